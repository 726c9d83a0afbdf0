"""A bounded schemathesis run over the knowledge-base and audit routes of an app that has
them working (a support desk over a real store, auth with a root key, a ledger): no input
may produce a 500. ``test_server_fuzz`` covers them on a bare app, where they answer 404."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

#: schemathesis reports every operation under one node id, which pytest-xdist cannot
#: distribute: these run in the main process (``make test``'s serial pass).
pytestmark = pytest.mark.serial
from hypothesis import HealthCheck, settings  # noqa: E402
from kb_helpers import bearer, serve  # noqa: E402

from llmeco.settings import Settings  # noqa: E402

_HOME = Path(tempfile.mkdtemp(prefix="llmeco-kb-fuzz-"))
SERVED = serve(
    Settings(home=_HOME, secret_key="fuzz-secret", audit_store_bodies=True)  # type: ignore[arg-type]
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", SERVED.app).include(
    path_regex=r"^/(v1/kb|admin/audit)"
)
SCHEMA.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_500(case: schemathesis.Case) -> None:
    response = case.call(headers=bearer(SERVED.root))
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)

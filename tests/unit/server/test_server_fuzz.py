"""A bounded schemathesis run over the app's OpenAPI schema: no input may produce a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

#: schemathesis reports every operation under one node id, which pytest-xdist cannot
#: distribute: these run in the main process (``make test``'s serial pass).
pytestmark = pytest.mark.serial
from fake_engine import FakeEngine  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from llmeco.server import build_app  # noqa: E402
from llmeco.settings import Settings  # noqa: E402

APP = build_app(Settings(home=Path("/nonexistent")), {"fake-model": FakeEngine()})
# Steer "model" to the served one so most cases get past the lookup into the real logic.
for _component in APP.openapi()["components"]["schemas"].values():
    if "model" in _component.get("properties", {}):
        _component["properties"]["model"] = {"type": "string", "enum": ["fake-model"]}
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Valid and invalid inputs alike (negative mode breaks types, ranges and required fields).
SCHEMA.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_500(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)

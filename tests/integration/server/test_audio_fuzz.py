"""A bounded schemathesis run over the audio routes with the real speech engines: no input,
valid or broken, may produce a 500 (multipart forms, JSON bodies, query strings alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from llmeco.apps.speech.service import SpeechService  # noqa: E402
from llmeco.server import build_app  # noqa: E402
from llmeco.settings import Settings  # noqa: E402

#: serial: schemathesis reports every operation under one node id, which pytest-xdist cannot
#: distribute (``make test`` runs these in its serial pass).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

_SETTINGS = Settings(home=Path("/nonexistent"), threads=1)
APP = build_app(_SETTINGS, {}, speech=SpeechService.from_settings(_SETTINGS))
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP).include(
    path_regex=r"^/v1/(audio|apps/voice)/"
)
SCHEMA.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_audio_input_produces_a_500(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)

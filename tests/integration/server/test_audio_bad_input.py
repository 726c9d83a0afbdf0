"""Every bad audio request is a clear OpenAI-style 4xx (never a 500), and the audio routes are
governed like the token routes: the ``audio`` scope, model allow-lists, usage in the ledger."""

from __future__ import annotations

import io
import json
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from server_helpers import assert_openai_error

from llmeco.apps.speech.audio_io import encode_all
from llmeco.apps.speech.service import SpeechService
from llmeco.governance.audit import AuditLedger
from llmeco.governance.audit import tables as t
from llmeco.governance.scopes import Grant
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow
RATE = 22_050


def tone_pcm(seconds: float) -> bytes:
    t_ = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 300 * t_) * 9000).astype("<i2").tobytes()


def wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(tone_pcm(seconds))
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        speech_max_seconds=4,
        speech_max_bytes=400_000,
        secret_key="test-secret",  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(settings: Settings, speech: SpeechService) -> AsyncIterator[httpx.AsyncClient]:
    limited = SpeechService(speech.recognizers, speech.synthesizers, max_seconds=4)
    app = build_app(settings, {}, speech=limited)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
    ) as c:
        yield c


FLAC = encode_all(tone_pcm(2.0), RATE, "flac")

# name → (form fields, file bytes or None for no file, expected status, param named)
TRANSCRIPTION_CASES: dict[str, tuple[dict[str, Any], bytes | None, int, str | None]] = {
    "empty file": ({}, b"", 400, "file"),
    "text, not audio": ({}, b"just some words, no sound\n" * 40, 415, "file"),
    "png image": ({}, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, 415, "file"),
    "truncated wav": ({}, wav(3.0)[:30_000], 400, "file"),
    "truncated flac": ({}, FLAC[: len(FLAC) // 3], 400, "file"),
    "corrupt flac": ({}, FLAC[:60], 400, "file"),
    "too long": ({}, wav(6.0), 413, "file"),
    "too big": ({}, wav(10.0), 413, None),
    "no file": ({}, None, 400, "file"),
    "unknown model": ({"model": "whisper-9"}, FLAC, 404, "model"),
    "speech model": ({"model": "tts-1"}, FLAC, 400, "model"),
    "unsupported language": ({"language": "fr"}, FLAC, 400, "language"),
    "unknown format": ({"response_format": "docx"}, FLAC, 400, "response_format"),
    "word timing without verbose_json": (
        {"timestamp_granularities[]": "word"},
        FLAC,
        400,
        "timestamp_granularities",
    ),
    "stream as srt": ({"stream": "true", "response_format": "srt"}, FLAC, 400, "stream"),
    "temperature": ({"temperature": "3"}, FLAC, 400, "temperature"),
}


@pytest.mark.parametrize("case", list(TRANSCRIPTION_CASES))
async def test_bad_transcription_requests(client: httpx.AsyncClient, case: str) -> None:
    fields, data, status, param = TRANSCRIPTION_CASES[case]
    form = {"model": "whisper-1", **fields}
    files = {"file": ("upload.bin", data)} if data is not None else None
    r = await client.post("/v1/audio/transcriptions", data=form, files=files)
    error = assert_openai_error(r, status)
    if param is not None:
        assert error["param"] == param, error
    if case == "unsupported language":
        assert "supported: en" in error["message"]


SPEECH_CASES: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "unknown voice": ({"voice": "darth"}, 400, "voice"),
    "unknown voice variant": ({"voice": "en-us+nobody"}, 400, "voice"),
    "unknown model": ({"model": "tts-9"}, 404, "model"),
    "transcription model": ({"model": "whisper-1"}, 400, "model"),
    "empty input": ({"input": ""}, 400, "input"),
    "blank input": ({"input": "   "}, 400, "input"),
    "input too long": ({"input": "a" * 4097}, 400, "input"),
    "unknown format": ({"response_format": "ogg"}, 400, "response_format"),
    "too fast": ({"speed": 9}, 400, "speed"),
    "unknown field": ({"pitch": 3}, 400, "pitch"),
}


@pytest.mark.parametrize("case", list(SPEECH_CASES))
async def test_bad_speech_requests(client: httpx.AsyncClient, case: str) -> None:
    fields, status, param = SPEECH_CASES[case]
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **fields}
    error = assert_openai_error(await client.post("/v1/audio/speech", json=body), status)
    assert error["param"] == param, error


async def test_speech_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/audio/speech", content=b"not json", headers={"content-type": "application/json"}
    )
    assert_openai_error(r, 400)


async def test_refused_uploads_leave_no_files_behind(
    speech: SpeechService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where multipart spools big parts
    limited = SpeechService(speech.recognizers, speech.synthesizers, max_seconds=4)
    app = build_app(Settings(home=tmp_path), {}, speech=limited)
    long = wav(30.0)  # 1.3 MB: Starlette spools parts over 1 MB to a file
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
    ) as c:
        half = long[: len(long) // 2]  # its header still says 30 s
        for data, status in ((long, 413), (half, 413), (b"\0" * 1_200_000, 415)):
            r = await c.post(
                "/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": ("a.wav", data)},
            )
            assert_openai_error(r, status)
    assert list(spool.iterdir()) == []


@pytest.fixture
async def governed(
    settings: Settings, speech: SpeechService
) -> AsyncIterator[tuple[httpx.AsyncClient, Authenticator, AuditLedger]]:
    auth = Authenticator.open(settings)
    with AuditLedger.open(settings) as ledger:
        app = build_app(settings, {}, speech=speech, auth=auth, ledger=ledger)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
        ) as c:
            yield c, auth, ledger
    await auth.aclose()


async def test_audio_scope_allow_list_and_ledger_usage(
    governed: tuple[httpx.AsyncClient, Authenticator, AuditLedger], settings: Settings
) -> None:
    client, auth, ledger = governed

    def key(scopes: set[str], models: set[str] | None = None) -> dict[str, str]:
        grant = Grant(scopes=frozenset(scopes), models=frozenset(models or ()))
        _, token = auth.keys.create("t", grant)
        return {"Authorization": f"Bearer {token}"}

    text = "Please hold the line."
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
    assert_openai_error(await client.post("/v1/audio/speech", json=body), 401)
    assert_openai_error(
        await client.post("/v1/audio/speech", json=body, headers=key({"chat"})), 403
    )
    only_whisper = key({"audio"}, {"whisper-1"})
    assert_openai_error(await client.post("/v1/audio/speech", json=body, headers=only_whisper), 403)
    listed = (await client.get("/v1/models", headers=only_whisper)).json()["data"]
    assert [m["id"] for m in listed] == ["whisper-tiny.en"]
    audio_key = key({"audio"})
    spoken = await client.post("/v1/audio/speech", json=body, headers=audio_key)
    assert spoken.status_code == 200 and spoken.headers["content-type"] == "audio/wav"
    heard = await client.post(
        "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"file": ("q.wav", spoken.content)},
        headers=audio_key,
    )
    assert heard.status_code == 200, heard.text
    ledger.flush()
    store = Store.from_settings(settings)
    with store.session() as s:
        rows = s.execute(
            sa.select(t.entries.c.route, t.entries.c.status, t.entries.c.payload)
            .where(t.entries.c.route.like("/v1/audio/%"))
            .where(t.entries.c.status == 200)
            .order_by(t.entries.c.seq)
        ).all()
    store.close()
    assert [r.route for r in rows] == ["/v1/audio/speech", "/v1/audio/transcriptions"]
    speech_entry, asr_entry = (json.loads(r.payload) for r in rows)
    assert speech_entry["prompt_tokens"] == len(text)  # characters in
    assert speech_entry["completion_tokens"] >= 1  # audio seconds out
    assert asr_entry["prompt_tokens"] == speech_entry["completion_tokens"]  # seconds in
    assert asr_entry["completion_tokens"] == len(heard.json()["text"])  # characters out
    assert speech_entry["model"] == "espeak-ng" and asr_entry["model"] == "whisper-tiny.en"
    assert len(speech_entry["response_sha256"]) == 64
    assert "request_body" not in speech_entry

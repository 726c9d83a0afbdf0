"""The voice support desk end to end on the shipped handbook (``examples/corpus/handbook.md``):
a spoken question (synthesised by the server's own ``/v1/audio/speech``) comes back with the
transcript, a cited answer and its speech; an unanswerable one is handed off, and says so.

Real everything: SmolLM2-135M (the default chat model), all-MiniLM-L6-v2, Whisper tiny.en,
eSpeak NG, through a real uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import LiveServer, assert_openai_error

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.speech.audio_io import decode
from llmeco.apps.speech.service import SpeechService
from llmeco.apps.support.desk import SupportDesk
from llmeco.engine.async_engine import AsyncEngine
from llmeco.governance.crypto import Cipher
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.settings import Settings
from llmeco.store import Store

pytestmark = pytest.mark.slow

HANDBOOK = Path(__file__).resolve().parents[3] / "examples" / "corpus" / "handbook.md"


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    cached_home: Path,
    default_model_dir: Path,
    embedder: Embedder,
    speech: SpeechService,
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("voice")
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    KnowledgeBase.create(store, "handbook", embedder).add_text(
        "handbook.md", HANDBOOK.read_text("utf-8")
    )
    desk = SupportDesk(store, embedder, ConversationLog(store, Cipher([b"v" * 32])))
    engine = AsyncEngine.from_ref("default", Settings(home=cached_home))
    app = build_app(
        settings, {engine.model_info.name: engine}, embedder, support=desk, speech=speech
    )
    with LiveServer(app) as server:
        yield server
    asyncio.run(engine.shutdown(timeout=1))
    store.close()


def spoken(client: httpx.Client, text: str, voice: str = "fable") -> bytes:
    r = client.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "voice": voice, "input": text, "response_format": "wav"},
    )
    assert r.status_code == 200, r.text
    return r.content


def ask(client: httpx.Client, audio: bytes, session: str) -> dict[str, Any]:
    r = client.post(
        "/v1/apps/voice/handbook",
        files={"file": ("question.wav", audio, "audio/wav")},
        data={"voice": "nova", "response_format": "mp3"},
        headers={"x-session-id": session},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_a_spoken_question_gets_a_cited_spoken_answer(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=120) as client:
        body = ask(client, spoken(client, "Where is your workshop located?"), "voice-1")
        assert {"workshop", "located"} <= words(body["transcript"]), body["transcript"]
        assert body["finish_reason"] == "stop", body
        assert body["session_id"] == "voice-1" and body["handoff"] is None
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])]
        passages = {c["index"]: c["text"] for c in body["citations"]}
        assert cited and all(n in passages for n in cited), body
        assert any("14 Quay Street" in passages[n] for n in cited), body
        audio = base64.b64decode(body["audio"]["data"])
        assert body["audio"]["media_type"] == "audio/mpeg"
        assert decode(audio).duration == pytest.approx(body["audio"]["duration"], abs=0.2)
        assert body["audio"]["duration"] > 1.0
        # the spoken answer says the answer (its citation markers are not read out)
        heard = client.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("answer.mp3", audio)},
        ).json()["text"]
        answer_words = words(re.sub(r"\[\d+\]", "", body["answer"]))
        assert len(answer_words & words(heard)) >= len(answer_words) // 2, (heard, body)


def test_an_unanswerable_spoken_question_is_handed_off(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=120) as client:
        body = ask(client, spoken(client, "What is the name of your CEO?", "alloy"), "voice-2")
        assert {"name", "ceo"} <= words(body["transcript"]), body["transcript"]
        assert body["finish_reason"] == "handoff", body
        assert body["handoff"]["id"]
        heard = client.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("answer.mp3", base64.b64decode(body["audio"]["data"]))},
        ).json()["text"]
        assert {"documentation", "support", "team"} <= words(heard), heard
        listed = client.get("/admin/handoffs", params={"kb": "handbook"}).json()["data"]
        assert any(h["session_id"] == "voice-2" for h in listed), listed


def test_voice_desk_bad_input(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=120) as client:
        wav = spoken(client, "Hello.")
        cases = [
            ("/v1/apps/voice/nope", {"file": ("q.wav", wav)}, {}, 404),
            ("/v1/apps/voice/handbook", {"file": ("q.txt", b"not audio" * 50)}, {}, 415),
            ("/v1/apps/voice/handbook", {"file": ("q.wav", wav)}, {"voice": "darth"}, 400),
            ("/v1/apps/voice/handbook", {"file": ("q.wav", b"")}, {}, 400),
        ]
        for path, files, data, status in cases:
            assert_openai_error(client.post(path, files=files, data=data), status)

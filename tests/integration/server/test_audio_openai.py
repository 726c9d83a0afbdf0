"""``/v1/audio/*`` with the official ``openai`` client, unchanged, against a real uvicorn.

The engines are the real bundled ones (Whisper tiny.en through faster-whisper, eSpeak NG in
its worker process): speech is synthesised by the server, then transcribed by it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import openai
import pytest
from server_helpers import LiveServer

from llmeco.apps.speech.audio_io import decode
from llmeco.apps.speech.service import SpeechService
from llmeco.server import build_app
from llmeco.settings import Settings

pytestmark = pytest.mark.slow

SENTENCE = "Refunds are paid to the original card within five business days."
WORDS = {"refunds", "paid", "original", "card", "business", "days"}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, speech: SpeechService
) -> Iterator[openai.OpenAI]:
    home = tmp_path_factory.mktemp("audio")
    app = build_app(Settings(home=home), {}, speech=speech)
    with LiveServer(app) as server:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def spoken(client: openai.OpenAI) -> bytes:
    """SENTENCE, spoken by the server, as a FLAC file."""
    return client.audio.speech.create(
        model="tts-1", voice="fable", input=SENTENCE, response_format="flac"
    ).content


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_models_list_the_speech_models_with_their_kind(client: openai.OpenAI) -> None:
    cards = {m.id: getattr(m, "task", None) for m in client.models.list()}
    assert cards == {"whisper-tiny.en": "transcribe", "espeak-ng": "speech"}
    assert client.models.retrieve("whisper-1").id == "whisper-tiny.en"
    assert client.models.retrieve("tts-1-hd").id == "espeak-ng"


def test_transcription_json_text_and_verbose(client: openai.OpenAI, spoken: bytes) -> None:
    plain = client.audio.transcriptions.create(model="whisper-1", file=("q.flac", spoken))
    assert len(WORDS & words_of(plain.text)) >= 4, plain.text
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("q.flac", spoken), response_format="text"
    )
    assert isinstance(text, str) and text.strip() == plain.text.strip()
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("q.flac", spoken),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    duration = decode(spoken).duration
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(duration, abs=0.05)
    assert verbose.segments and verbose.words
    assert verbose.text == plain.text
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and verbose.words[-1].end <= duration + 1e-3
    for seg in verbose.segments:
        assert 0 <= seg.start <= seg.end <= duration + 1e-3


CUE = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def cue_times(text: str) -> list[tuple[float, float]]:
    out = []
    for m in CUE.finditer(text):
        h, mi, s, ms, h2, mi2, s2, ms2 = (int(g) for g in m.groups())
        out.append((h * 3600 + mi * 60 + s + ms / 1000, h2 * 3600 + mi2 * 60 + s2 + ms2 / 1000))
    return out


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_have_monotonic_cues_inside_the_audio(client: openai.OpenAI, fmt: str) -> None:
    long_text = (
        "The parcel left our warehouse on Tuesday afternoon. You can change your delivery "
        "address until the order ships. The warranty covers manufacturing defects for two "
        "years. Please restart the router and try again in a few minutes."
    )
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input=long_text, response_format="wav"
    ).content
    duration = decode(audio).duration
    subs = client.audio.transcriptions.create(
        model="whisper-1", file=("long.wav", audio), response_format=fmt
    )
    assert isinstance(subs, str)
    if fmt == "vtt":
        assert subs.startswith("WEBVTT")
    else:
        assert subs.startswith("1\n")
    times = cue_times(subs)
    assert times, subs
    flat = [t for pair in times for t in pair]
    assert flat == sorted(flat), f"cues go back in time: {times}"
    assert all(0 <= t <= duration + 1e-3 for t in flat)


def test_streamed_transcription_sends_deltas_then_done(
    client: openai.OpenAI, spoken: bytes
) -> None:
    events = list(
        client.audio.transcriptions.create(model="whisper-1", file=("q.flac", spoken), stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.delta" in kinds
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas == events[-1].text and len(WORDS & words_of(deltas)) >= 4


def test_translation_of_english_speech_is_english_text(
    client: openai.OpenAI, spoken: bytes
) -> None:
    out = client.audio.translations.create(model="whisper-1", file=("q.flac", spoken))
    assert len(WORDS & words_of(out.text)) >= 4


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_in_every_format_decodes_to_a_plausible_length(
    client: openai.OpenAI, fmt: str
) -> None:
    text = "The parcel left our warehouse on Tuesday afternoon."
    data = client.audio.speech.create(
        model="tts-1", voice="nova", input=text, response_format=fmt
    ).content
    # OpenAI's pcm is raw 24 kHz 16-bit mono
    seconds = len(data) / 2 / 24_000 if fmt == "pcm" else decode(data).duration
    words = len(text.split())
    # conversational English is 2-4 words a second; eSpeak at speed 1 is about 2.9
    assert words / 4.5 < seconds < words / 1.5 + 1.0, seconds
    slow = client.audio.speech.create(
        model="tts-1", voice="nova", input=text, response_format="wav", speed=0.5
    ).content
    assert decode(slow).duration > seconds * 1.5


def test_streaming_speech_starts_before_the_audio_is_complete(client: openai.OpenAI) -> None:
    text = " ".join(["The sale ends at midnight on Sunday, so please order early."] * 30)
    arrivals: list[tuple[float, int]] = []
    start = time.perf_counter()
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="mp3"
    ) as response:
        assert response.headers.get("content-length") is None  # chunked, not buffered
        assert response.headers["content-type"] == "audio/mpeg"
        for chunk in response.iter_bytes():
            arrivals.append((time.perf_counter() - start, len(chunk)))
    first, last = arrivals[0][0], arrivals[-1][0]
    assert len(arrivals) >= 3
    assert first < last / 2, f"first bytes after {first:.2f}s of {last:.2f}s"


def test_voices_are_listed(client: openai.OpenAI) -> None:
    listed = client.get("/audio/voices", cast_to=object)
    assert isinstance(listed, dict)
    ids = [v["id"] for v in listed["data"]]
    assert {"alloy", "echo", "fable", "onyx", "nova", "shimmer", "en-gb-x-rp"} <= set(ids)

"""The chat page's microphone, dictation and read-aloud buttons in a real headless Chromium.

Chromium's fake media stream plays a WAV file (a question spoken by eSpeak NG) as the
microphone (``--use-file-for-fake-audio-capture``); the page records it with MediaRecorder
(WebM/Opus), the server transcribes it, and the text is sent as the user's turn (Chat tab) or
appended to the draft (Write tab). "Read aloud" fetches /v1/audio/speech and plays it.
Skipped when Playwright or Debian's chromium is missing.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from server_helpers import LiveServer

from llmeco.apps.speech.audio_io import encode_all
from llmeco.apps.speech.service import SpeechService
from llmeco.server import build_app
from llmeco.settings import Settings

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

QUESTION = "What are your opening hours on Saturday?"


@pytest.fixture
def question_wav(tmp_path: Path, speech: SpeechService) -> tuple[Path, float]:
    """QUESTION spoken, with silence around it (the fake device loops the file)."""
    tts = speech.synthesizers["espeak-ng"]
    stream = tts.stream(QUESTION, tts.voice("en-us"), 1.0)
    rate = stream.sample_rate
    pcm = bytes(2 * rate // 2) + b"".join(stream) + bytes(2 * rate)
    path = tmp_path / "question.wav"
    data = encode_all(pcm, rate, "wav")
    # Chromium wants a WAV with real sizes in its header: rewrite the streamed "unknown" ones
    riff = bytearray(data)
    riff[4:8] = (len(riff) - 8).to_bytes(4, "little")
    at = riff.index(b"data")
    riff[at + 4 : at + 8] = (len(riff) - at - 8).to_bytes(4, "little")
    path.write_bytes(bytes(riff))
    return path, len(pcm) / 2 / rate


@pytest.fixture
def live(tmp_path: Path, speech: SpeechService) -> Iterator[LiveServer]:
    fake = FakeEngine(reply="We open at nine [1].", delay=0.01)
    app = build_app(Settings(home=tmp_path), {fake.name: fake}, speech=speech)
    with LiveServer(app) as server:
        yield server


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_microphone_dictation_and_read_aloud(
    live: LiveServer, question_wav: tuple[Path, float]
) -> None:
    expect = playwright_sync.expect
    wav, seconds = question_wav
    args = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page()
            page.goto(live.url + "/")
            expect(page.locator("#model option")).to_have_text(["fake-model"])
            # Chat: speak, stop, and the transcript is sent as the user's message.
            page.click("#mic")
            expect(page.locator("#mic")).to_have_attribute("aria-pressed", "true")
            page.wait_for_timeout(int(seconds * 1000) + 300)
            page.click("#mic")
            user = page.locator(".msg.user").first
            expect(user).to_have_count(1, timeout=30_000)
            heard = user.text_content() or ""
            assert {"opening", "hours", "saturday"} <= words(heard), heard
            answer = page.locator(".msg.assistant").last
            expect(answer).to_have_attribute("data-streaming", "false", timeout=10_000)
            # Read aloud: the answer is fetched as speech and played.
            button = page.locator("button.read-aloud").last
            button.click()
            expect(button).to_have_attribute("data-state", re.compile("playing|done"))
            page.wait_for_function(
                "() => Number(document.querySelector('button.read-aloud').dataset.duration) > 0.5"
            )
            # Write: dictation appends the transcript to the draft.
            page.click("#tab-write")
            page.fill("#write-input", "Draft:")
            page.click("#write-mic")
            page.wait_for_timeout(int(seconds * 1000) + 300)
            page.click("#write-mic")
            expect(page.locator("#write-input")).to_have_value(
                re.compile(r"^Draft: .*hours", re.IGNORECASE), timeout=30_000
            )
        finally:
            browser.close()

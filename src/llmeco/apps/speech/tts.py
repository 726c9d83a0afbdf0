"""Speech synthesis with eSpeak NG, run as a child process (see ``espeak_worker.py`` for why).

eSpeak NG is a formant synthesiser: robotic next to neural voices, but it ships inside a PyPI
wheel (``espeakng-loader``: the library and its data, no download), speaks English about 50×
faster than real time on one core, and streams — the first PCM arrives within ~100 ms, so the
speech route's first bytes go out long before a long text is finished. Each request runs its
own worker process, so requests run in parallel and one is stopped by killing its process.

Voices: eSpeak's English voices (``en-us``, ``en-gb``, ``en-gb-x-rp``, ``en-gb-scotland``,
``en-029``, ``en-us-nyc``), each optionally with a variant (``en-us+f3``), and OpenAI's voice
names (``alloy``, ``nova``, …) mapped onto them so OpenAI clients work unchanged.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from llmeco.apps.speech.protocol import Voice
from llmeco.errors import GenerateError, InvalidRequest

#: Name the engine is served as (OpenAI's ``tts-1`` and ``tts-1-hd`` map to it).
DEFAULT_TTS_NAME = "espeak-ng"

#: eSpeak NG's English voices (language → description).
ENGLISH = {
    "en-us": "American English",
    "en-gb": "British English",
    "en-gb-x-rp": "British English, received pronunciation",
    "en-gb-scotland": "Scottish English",
    "en-029": "Caribbean English",
    "en-us-nyc": "New York City English",
}

#: OpenAI's voice names → an eSpeak voice (language + variant), so OpenAI clients work.
OPENAI_VOICES = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-gb-scotland",
    "coral": "en-us+f2",
    "echo": "en-us+m7",
    "fable": "en-gb-x-rp",
    "nova": "en-us+f3",
    "onyx": "en-us+m1",
    "sage": "en-gb+f4",
    "shimmer": "en-us+f4",
    "verse": "en-029",
    "marin": "en-us+f5",
    "cedar": "en-gb-x-rp+m3",
}

_WORKER = Path(__file__).with_name("espeak_worker.py")
#: The speaking rate of ``speed=1`` (words per minute) and eSpeak's limits; ``speed`` scales
#: it. 150 wpm is a calm conversational pace; eSpeak's own default of 175 is measurably harder
#: to understand (benchmarks/speech.py: Whisper tiny.en's WER on it is a few points higher).
_BASE_RATE, _MIN_RATE, _MAX_RATE = 150, 80, 450


def _variants() -> frozenset[str]:
    try:
        import espeakng_loader

        root = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
        return frozenset(p.name for p in root.iterdir())
    except (ImportError, OSError, RuntimeError):
        return frozenset()


class ESpeakSynthesizer:
    """A :class:`~llmeco.apps.speech.protocol.SpeechSynthesizer` over eSpeak NG."""

    name = DEFAULT_TTS_NAME
    max_input = 4096

    def __init__(self) -> None:
        self._variants = _variants()

    def voices(self) -> list[Voice]:
        """OpenAI's names first, then eSpeak's English voices."""
        out = [
            Voice(alias, _language_of(target), target, f"OpenAI voice name → eSpeak {target}")
            for alias, target in OPENAI_VOICES.items()
        ]
        out += [Voice(lang, lang, lang, desc) for lang, desc in ENGLISH.items()]
        return out

    def voice(self, name: str) -> Voice:
        """The voice ``name`` (an OpenAI name, ``en-gb``, or ``en-gb+f3``); 400 when unknown."""
        key = name.strip().lower()
        if key in OPENAI_VOICES:
            target = OPENAI_VOICES[key]
            return Voice(key, _language_of(target), target)
        base, _, variant = key.partition("+")
        if base in ENGLISH and (not variant or variant in self._variants):
            return Voice(key, base, key)
        raise InvalidRequest(
            f"unknown voice {name!r} for {self.name}; use one of "
            + ", ".join([*OPENAI_VOICES, *ENGLISH])
            + " (an eSpeak voice may take a variant, e.g. en-gb+f3; GET /v1/audio/voices "
            "lists them)",
            param="voice",
        )

    def stream(self, text: str, voice: Voice, speed: float) -> ESpeakStream:
        """Start the worker; PCM chunks come as eSpeak produces them."""
        rate = int(max(_MIN_RATE, min(_MAX_RATE, round(_BASE_RATE * speed))))
        return ESpeakStream(text, voice.engine_voice, rate)


def _language_of(target: str) -> str:
    return target.partition("+")[0]


class ESpeakStream:
    """One synthesis in its own worker process; iterate for PCM, ``close`` to stop."""

    def __init__(self, text: str, voice: str, rate: int) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), voice, str(rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(text.encode("utf-8"))
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        header = self._read_exactly(4)
        if len(header) < 4:
            self._fail()
        self.sample_rate: int = struct.unpack("<I", header)[0]

    def _read_exactly(self, n: int) -> bytes:
        assert self._proc.stdout is not None
        out = b""
        while len(out) < n:
            chunk = os.read(self._proc.stdout.fileno(), n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def _fail(self) -> None:
        code = self._proc.wait(timeout=10)
        err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
        self.close()
        if code == 3:
            raise InvalidRequest(err.strip() or "unknown voice", param="voice")
        raise GenerateError(f"eSpeak NG failed (exit {code}): {err.strip()}")

    def __iter__(self) -> Iterator[bytes]:
        """s16le PCM chunks (whole samples) as the worker writes them."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        odd = b""
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunk, odd = odd + chunk, b""
                if len(chunk) % 2:
                    chunk, odd = chunk[:-1], chunk[-1:]
                yield chunk
            if self._proc.wait(timeout=30) != 0:
                self._fail()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker if it still runs, and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()

"""What a speech engine is: the recogniser (ASR) and synthesiser (TTS) protocols the server
and the voice apps use, and the values they exchange.

Any engine that satisfies a protocol plugs in — the bundled defaults (Whisper tiny.en through
faster-whisper, eSpeak NG), a larger Whisper model directory given by path, or another
runtime — without the routes knowing which.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Word:
    """One recognised word and when it was said (seconds from the start)."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech (a phrase or sentence)."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    #: Offset (in 10 ms frames) of the window the segment was decoded in, and its token ids.
    seek: int = 0
    tokens: tuple[int, ...] = ()


@dataclass
class Transcript:
    """Everything a recogniser found in one recording."""

    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole transcript, segments joined."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class SpeechRecognizer(Protocol):
    """Speech to text."""

    #: The served model name (``whisper-tiny.en``).
    name: str
    #: Sample rate the samples passed to :meth:`segments` must have.
    sample_rate: int
    #: ISO-639-1 languages it recognises (English-only models: ``("en",)``).
    languages: tuple[str, ...]
    #: Whether it can translate other languages into English.
    translates: bool

    def segments(
        self,
        samples: np.ndarray,
        *,
        language: str | None,
        prompt: str | None,
        words: bool,
        translate: bool,
        temperature: float,
    ) -> tuple[str, Iterator[Segment]]:
        """The detected (or given) language and the segments, produced as decoding proceeds."""
        ...


@dataclass(frozen=True)
class Voice:
    """A voice a synthesiser offers."""

    id: str
    language: str
    #: What it is in the engine's own terms (``en-gb-x-rp+f3``), when ``id`` is an alias.
    engine_voice: str
    description: str = ""


class SpeechSynthesizer(Protocol):
    """Text to speech."""

    #: The served model name (``espeak-ng``).
    name: str
    #: Most characters one request may synthesise.
    max_input: int

    def voices(self) -> list[Voice]:
        """Every voice, OpenAI's names (aliases) first."""
        ...

    def voice(self, name: str) -> Voice:
        """The voice called ``name``; ``InvalidRequest`` naming the choices when unknown."""
        ...

    def stream(self, text: str, voice: Voice, speed: float) -> SynthesisStream:
        """Start synthesising; the stream yields 16-bit mono PCM as it is produced."""
        ...


class SynthesisStream(Protocol):
    """One running synthesis: its sample rate, its PCM chunks, and a way to stop it."""

    sample_rate: int

    def __iter__(self) -> Iterator[bytes]:
        """s16le mono PCM chunks at ``sample_rate``, as synthesis produces them."""
        ...

    def close(self) -> None:
        """Stop synthesis (a client that went away) and free what it holds."""
        ...

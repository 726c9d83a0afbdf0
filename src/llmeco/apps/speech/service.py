"""The speech models a server offers, by name, and the two operations on them.

OpenAI's names map to the defaults (``whisper-1`` and the ``gpt-4o*-transcribe`` names to the
recogniser, ``tts-1``, ``tts-1-hd`` and ``gpt-4o-mini-tts`` to the synthesiser), so clients
written for OpenAI work unchanged. Engines load lazily on first use and are then shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llmeco.apps.speech.asr import WhisperRecognizer
from llmeco.apps.speech.audio_io import Decoded, decode
from llmeco.apps.speech.protocol import (
    Segment,
    SpeechRecognizer,
    SpeechSynthesizer,
    Transcript,
)
from llmeco.apps.speech.tts import ESpeakSynthesizer
from llmeco.errors import InvalidRequest, NotFound
from llmeco.settings import Settings

#: OpenAI's speech-to-text model names, served by the default recogniser.
OPENAI_ASR_NAMES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
#: OpenAI's text-to-speech model names, served by the default synthesiser.
OPENAI_TTS_NAMES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


@dataclass
class SpeechService:
    """Recognisers and synthesisers by served name, OpenAI's names as aliases of the first."""

    recognizers: dict[str, SpeechRecognizer]
    synthesizers: dict[str, SpeechSynthesizer]
    #: Longest recording accepted, in seconds (413 past it).
    max_seconds: float = 600.0
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recognizers:
            first = next(iter(self.recognizers))
            self.aliases.update({n: first for n in OPENAI_ASR_NAMES if n not in self.aliases})
        if self.synthesizers:
            first = next(iter(self.synthesizers))
            self.aliases.update({n: first for n in OPENAI_TTS_NAMES if n not in self.aliases})

    @classmethod
    def from_settings(cls, settings: Settings) -> SpeechService:
        """The bundled defaults, or the Whisper directory ``LLMECO_SPEECH_ASR_MODEL`` names."""
        path = Path(settings.speech_asr_model).expanduser() if settings.speech_asr_model else None
        asr = WhisperRecognizer(path, threads=settings.threads, beam_size=settings.speech_beam_size)
        tts = ESpeakSynthesizer()
        return cls({asr.name: asr}, {tts.name: tts}, max_seconds=settings.speech_max_seconds)

    def names_of(self, name: str) -> set[str]:
        """A served speech model's name and its aliases."""
        return {name, *(a for a, n in self.aliases.items() if n == name)}

    def recognizer(self, model: str) -> tuple[str, SpeechRecognizer]:
        """The recogniser ``model`` names (or aliases); 404 naming the choices, 400 for a TTS."""
        name = self.aliases.get(model, model)
        if name in self.recognizers:
            return name, self.recognizers[name]
        if name in self.synthesizers:
            raise InvalidRequest(
                f"{model} is a text-to-speech model; use /v1/audio/speech", param="model"
            )
        raise NotFound(
            f"The speech-to-text model `{model}` does not exist. Available: "
            + ", ".join([*self.recognizers, *OPENAI_ASR_NAMES]),
            param="model",
        )

    def synthesizer(self, model: str) -> tuple[str, SpeechSynthesizer]:
        """The synthesiser ``model`` names (or aliases); 404 naming the choices."""
        name = self.aliases.get(model, model)
        if name in self.synthesizers:
            return name, self.synthesizers[name]
        if name in self.recognizers:
            raise InvalidRequest(
                f"{model} is a speech-to-text model; use /v1/audio/transcriptions",
                param="model",
            )
        raise NotFound(
            f"The text-to-speech model `{model}` does not exist. Available: "
            + ", ".join([*self.synthesizers, *OPENAI_TTS_NAMES]),
            param="model",
        )

    def decode(self, data: bytes, recognizer: SpeechRecognizer) -> Decoded:
        """The upload as the recogniser's samples (400/413/415 for bad audio)."""
        return decode(data, sample_rate=recognizer.sample_rate, max_seconds=self.max_seconds)


def transcribe(
    recognizer: SpeechRecognizer,
    audio: Decoded,
    *,
    language: str | None = None,
    prompt: str | None = None,
    words: bool = False,
    translate: bool = False,
    temperature: float = 0.0,
) -> Transcript:
    """The whole transcript of ``audio`` (blocking; run it in a worker thread)."""
    lang, segments = recognizer.segments(
        audio.samples,
        language=language,
        prompt=prompt,
        words=words,
        translate=translate,
        temperature=temperature,
    )
    return Transcript(lang, audio.duration, list(segments))


def stream_segments(
    recognizer: SpeechRecognizer,
    audio: Decoded,
    *,
    language: str | None = None,
    prompt: str | None = None,
    temperature: float = 0.0,
) -> tuple[str, Iterator[Segment]]:
    """The language and the segments as the recogniser produces them (for streaming)."""
    return recognizer.segments(
        audio.samples,
        language=language,
        prompt=prompt,
        words=False,
        translate=False,
        temperature=temperature,
    )

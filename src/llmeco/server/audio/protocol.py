"""Schemas of the audio routes, in OpenAI's shapes (``audio.transcriptions``, ``audio.speech``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: ``response_format`` of ``/v1/audio/transcriptions`` and ``/translations``.
TranscriptFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
#: ``response_format`` of ``/v1/audio/speech``.
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SpeechRequest(BaseModel):
    """``POST /v1/audio/speech``: text in, audio out (streamed as it is synthesised)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256, description="`tts-1`, `espeak-ng`, …")
    input: str = Field(min_length=1, max_length=4096, description="The text to speak.")
    voice: str = Field(
        min_length=1, max_length=64, description="An OpenAI voice name or an eSpeak voice."
    )
    response_format: SpeechFormat = "mp3"
    speed: float = Field(
        default=1.0,
        ge=0.25,
        le=4.0,
        description="Speaking rate (1 = 150 words a minute); eSpeak's range is 80–450 words "
        "a minute, so values outside about 0.53–3.0 are clamped to it.",
    )
    instructions: str | None = Field(
        default=None, max_length=4096, description="Accepted for compatibility; eSpeak ignores it."
    )
    stream_format: Literal["audio"] = Field(
        default="audio", description="Only raw audio streaming (`audio`) is offered."
    )


class TranscriptionWord(BaseModel):
    """A word and its time span (``timestamp_granularities[]=word``)."""

    word: str
    start: float
    end: float


class TranscriptionSegment(BaseModel):
    """A segment of a ``verbose_json`` transcript."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class Transcription(BaseModel):
    """``response_format=json``."""

    text: str


class TranscriptionVerbose(BaseModel):
    """``response_format=verbose_json``: the text with its language, duration and timings."""

    task: Literal["transcribe", "translate"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None


class VoiceCard(BaseModel):
    """One voice of a speech model."""

    id: str
    object: Literal["voice"] = "voice"
    model: str
    language: str
    engine_voice: str
    description: str = ""


class VoiceList(BaseModel):
    """``GET /v1/audio/voices``."""

    object: Literal["list"] = "list"
    data: list[VoiceCard]

"""``POST /v1/audio/transcriptions``, ``/translations``, ``/speech``; ``GET /v1/audio/voices``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from starlette.responses import Response

from llmeco.server.audio import serving
from llmeco.server.audio.protocol import (
    SpeechRequest,
    TranscriptFormat,
    VoiceList,
)
from llmeco.server.errors import ERROR_RESPONSES, ErrorResponse
from llmeco.server.state import get_state

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
}
_TRANSCRIPT: dict[int | str, dict[str, Any]] = {
    **_RESPONSES,
    200: {
        "description": "The transcript: JSON (`json`, `verbose_json`), plain text (`text`, "
        "`srt`, `vtt`), or transcript events (`stream=true`).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
            "text/vtt": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
}

router = APIRouter(
    prefix="/v1/audio",
    tags=["audio"],
    responses=_RESPONSES,
)


async def _transcribe(
    request: Request,
    file: UploadFile,
    model: str,
    language: str | None,
    prompt: str | None,
    response_format: str,
    temperature: float,
    granularities: list[str] | None,
    stream: bool,
    translate: bool,
) -> Response:
    data = await serving.read_upload(file)
    ask = serving.TranscriptionAsk(
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=granularities,
        stream=stream,
        translate=translate,
    )
    return await serving.transcription(get_state(request), request, data, ask)


@router.post("/transcriptions", responses=_TRANSCRIPT)
async def transcriptions(
    request: Request,
    file: UploadFile = File(description="The recording: WAV, FLAC, MP3, OGG/Opus, M4A, WebM."),
    model: str = Form(min_length=1, max_length=256, description="`whisper-1` or a served name."),
    language: str | None = Form(default=None, max_length=16),
    prompt: str | None = Form(default=None, max_length=2000),
    response_format: TranscriptFormat = Form(default="json"),
    temperature: float = Form(default=0.0),
    timestamp_granularities: list[str] | None = Form(
        default=None, alias="timestamp_granularities[]"
    ),
    stream: bool = Form(default=False),
) -> Response:
    """Speech to text in the recording's language (OpenAI's ``audio.transcriptions``)."""
    return await _transcribe(
        request,
        file,
        model,
        language,
        prompt,
        response_format,
        temperature,
        timestamp_granularities,
        stream,
        translate=False,
    )


@router.post("/translations", responses=_TRANSCRIPT)
async def translations(
    request: Request,
    file: UploadFile = File(description="The recording: WAV, FLAC, MP3, OGG/Opus, M4A, WebM."),
    model: str = Form(min_length=1, max_length=256),
    prompt: str | None = Form(default=None, max_length=2000),
    response_format: TranscriptFormat = Form(default="json"),
    temperature: float = Form(default=0.0),
) -> Response:
    """Speech in any supported language to English text (an English-only model transcribes
    English speech)."""
    return await _transcribe(
        request, file, model, None, prompt, response_format, temperature, None, False, True
    )


@router.post(
    "/speech",
    response_class=Response,
    responses={
        **_RESPONSES,
        200: {
            "description": "The audio, streamed as it is synthesised.",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in (
                    "audio/mpeg",
                    "audio/ogg",
                    "audio/aac",
                    "audio/flac",
                    "audio/wav",
                    "audio/pcm",
                )
            },
        },
    },
)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """Text to speech (OpenAI's ``audio.speech``): chunked audio, playable as it arrives."""
    return await serving.speech(get_state(request), request, body)


@router.get("/voices", response_model=VoiceList)
async def voices(
    request: Request, model: str | None = Query(default=None, max_length=256)
) -> VoiceList:
    """The voices of the speech models (OpenAI's names and the engine's own)."""
    return serving.voices(get_state(request), model)

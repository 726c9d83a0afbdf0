"""``POST /v1/apps/voice/{kb}``: a spoken question in, a cited answer and its speech out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile

from llmeco.server.audio.protocol import SpeechFormat
from llmeco.server.audio.serving import read_upload
from llmeco.server.errors import ERROR_RESPONSES, ErrorResponse
from llmeco.server.state import get_state
from llmeco.server.voice import serving
from llmeco.server.voice.protocol import VoiceAnswer

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
}

router = APIRouter(prefix="/v1/apps/voice", tags=["apps"], responses=_RESPONSES)


@router.post("/{kb}", response_model=VoiceAnswer)
async def voice(
    request: Request,
    kb: str = Path(min_length=1, max_length=200),
    file: UploadFile = File(description="The spoken question (any format /v1/audio reads)."),
    voice: str = Form(default="alloy", max_length=64),
    response_format: SpeechFormat = Form(default="mp3"),
    model: str = Form(default="whisper-1", max_length=256, description="Speech-to-text."),
    speech_model: str = Form(default="tts-1", max_length=256, description="Text-to-speech."),
    user: str | None = Form(default=None, max_length=256),
) -> VoiceAnswer:
    """Transcribe the question, answer it from the knowledge base ``kb`` like
    ``model: support:<kb>`` (citations, hand-off, session from ``x-session-id``), and speak
    the answer."""
    data = await read_upload(file)
    ask = serving.VoiceAsk(
        kb=kb,
        voice=voice,
        response_format=response_format,
        model=model,
        speech_model=speech_model,
        user=user,
    )
    return await serving.answer(get_state(request), request, data, ask)

"""The voice support desk: transcription → the support assistant → speech.

The middle step is the support assistant itself (``server/support/serving.py``, the
``support:<kb>`` chat backend), called with the transcript as the user's turn, so retrieval,
grounding, citations, the conversation log, sessions (``x-session-id``) and hand-offs behave
exactly as for typed questions. The route needs the ``audio`` scope (its path) and ``chat``
(checked here, since it answers with the chat model). Audio seconds in and characters out
are charged like on ``/v1/audio/*``; the model's tokens like on chat.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass

import anyio
from starlette.requests import Request

from llmeco.apps.speech.audio_io import OUTPUT_FORMATS, OUTPUT_RATE, encode_all
from llmeco.apps.speech.protocol import SpeechSynthesizer, Voice
from llmeco.apps.speech.service import transcribe
from llmeco.apps.support.desk import PREFIX
from llmeco.errors import InvalidRequest, PermissionDenied
from llmeco.governance.scopes import CHAT
from llmeco.server.audio.serving import speech_of
from llmeco.server.auth import current_key
from llmeco.server.openai.chat.protocol import ChatCompletionRequest
from llmeco.server.state import ServerState, get_context, request_guard
from llmeco.server.support.serving import desk_of, support_chat
from llmeco.server.voice.protocol import SpokenAudio, VoiceAnswer

#: Citation markers (``[1]``, ``[2][3]``) are shown, not read aloud.
_MARKERS = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class VoiceAsk:
    """One spoken question, as the route parsed it."""

    kb: str
    voice: str
    response_format: str
    model: str
    speech_model: str
    user: str | None


async def answer(state: ServerState, request: Request, data: bytes, ask: VoiceAsk) -> VoiceAnswer:
    """Hear the question, answer it from ``ask.kb``, speak the answer."""
    key = current_key(request)
    if key is not None and CHAT not in key.scopes:
        raise PermissionDenied(
            f"API key {key.id} lacks the chat scope the voice desk answers with "
            "(it needs audio and chat)"
        )
    speech = speech_of(state)
    desk_of(state).knowledge_base(ask.kb)  # 404 for an unknown kb before any work
    asr_name, recognizer = speech.recognizer(ask.model)
    tts_name, synthesizer = speech.synthesizer(ask.speech_model)
    guard = request_guard.get()
    if guard is not None:
        guard.check_model(speech.names_of(asr_name) | {ask.model})
        guard.check_model(speech.names_of(tts_name) | {ask.speech_model})
    voice = synthesizer.voice(ask.voice)
    audio = await anyio.to_thread.run_sync(speech.decode, data, recognizer)
    if guard is not None:
        await guard.reserve(max(1, math.ceil(audio.duration)), room=0)
    heard = await anyio.to_thread.run_sync(lambda: transcribe(recognizer, audio))
    question = heard.text.strip()
    if not question:
        raise InvalidRequest("no speech was recognised in the recording", param="file")
    chat = ChatCompletionRequest.model_validate(
        {
            "model": PREFIX + ask.kb,
            "messages": [{"role": "user", "content": question}],
            **({"user": ask.user} if ask.user else {}),
        }
    )
    reply = await support_chat(state, chat, request)
    body = json.loads(bytes(reply.body))
    choice = body["choices"][0]
    text = choice["message"]["content"] or ""
    spoken, seconds = await anyio.to_thread.run_sync(
        _speak, synthesizer, _MARKERS.sub("", text), voice, ask.response_format
    )
    if guard is not None:
        await guard.consume(len(text))
    get_context(request).usage = body.get("usage")
    return VoiceAnswer(
        id=body["id"],
        kb=ask.kb,
        session_id=body["session_id"],
        transcript=question,
        answer=text,
        finish_reason=choice["finish_reason"],
        citations=body["citations"],
        handoff=body.get("handoff"),
        audio=SpokenAudio(
            format=ask.response_format,
            media_type=OUTPUT_FORMATS[ask.response_format][3],
            data=base64.b64encode(spoken).decode("ascii"),
            duration=round(seconds, 3),
        ),
    )


def _speak(
    synthesizer: SpeechSynthesizer, text: str, voice: Voice, fmt: str
) -> tuple[bytes, float]:
    stream = synthesizer.stream(text, voice, 1.0)
    pcm = b"".join(stream)
    seconds = len(pcm) / 2 / stream.sample_rate
    data = encode_all(pcm, stream.sample_rate, fmt)
    return data, seconds if fmt != "pcm" else len(data) / 2 / OUTPUT_RATE

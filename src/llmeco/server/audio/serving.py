"""The work behind the audio routes: model resolution, governance, decoding, the engines.

Governance is the same as for tokens (``RequestGuard``): a speech model is resolved through
the key's model allow-list, and its units are charged against the key's TPM and daily budget —
one second of audio or one character of text counts as one token. Transcription charges the
audio's seconds before it runs (429 when over a limit) and the transcript's characters after;
speech charges the input's characters before and the audio's seconds after. The audit ledger
records them as the entry's prompt/completion counts, with the request and response hashes
(audio bodies are kept only with ``LLMECO_AUDIT_STORE_BODIES``, encrypted like every body).

Uploads are read into memory and the multipart spool is closed at once; decoding never writes
a file (``apps.speech.audio_io``), so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import anyio
from fastapi import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Send

from llmeco.apps.speech.audio_io import OUTPUT_RATE, Decoded, Encoder
from llmeco.apps.speech.captions import srt, vtt
from llmeco.apps.speech.protocol import SpeechRecognizer, SynthesisStream, Transcript
from llmeco.apps.speech.service import SpeechService, stream_segments, transcribe
from llmeco.errors import EngineDead, InvalidRequest, NotFound
from llmeco.server.audio.protocol import (
    SpeechRequest,
    Transcription,
    TranscriptionSegment,
    TranscriptionVerbose,
    TranscriptionWord,
    VoiceCard,
    VoiceList,
)
from llmeco.server.errors import ClientGone, describe
from llmeco.server.state import ServerState, get_context, request_guard
from llmeco.server.streaming import DONE, EventStream, sse

_LANGUAGE_NAMES = {"en": "english"}
_GRANULARITIES = {"word", "segment"}


def speech_of(state: ServerState) -> SpeechService:
    """The server's speech models; 404 when it serves none."""
    if state.speech is None:
        raise NotFound("this server serves no speech models", param="model")
    if state.draining:
        raise EngineDead("the server is shutting down; retry on another replica")
    return state.speech


def _check_key(speech: SpeechService, name: str, model: str) -> None:
    guard = request_guard.get()
    if guard is not None:
        guard.check_model(speech.names_of(name) | {model})


async def read_upload(file: UploadFile) -> bytes:
    """The upload's bytes; its spooled temporary file is closed (deleted) at once."""
    try:
        return await file.read()
    finally:
        await file.close()


class TranscriptionAsk:
    """One transcription (or translation) request, as the route parsed it."""

    def __init__(
        self,
        *,
        model: str,
        language: str | None,
        prompt: str | None,
        response_format: str,
        temperature: float,
        granularities: list[str] | None,
        stream: bool,
        translate: bool,
    ) -> None:
        self.model = model
        self.language = (language or "").strip().lower() or None
        self.prompt = prompt or None
        self.response_format = response_format
        self.temperature = temperature
        self.granularities = set(granularities or ["segment"])
        self.stream = stream
        self.translate = translate

    def check(self, recognizer: SpeechRecognizer) -> None:
        """400 for a combination the route cannot serve (before any decoding)."""
        unknown = self.granularities - _GRANULARITIES
        if unknown:
            raise InvalidRequest(
                f"unknown timestamp_granularities {sorted(unknown)}; use word and/or segment",
                param="timestamp_granularities",
            )
        if "word" in self.granularities and self.response_format != "verbose_json":
            raise InvalidRequest(
                "word timestamps need response_format=verbose_json",
                param="timestamp_granularities",
            )
        if self.stream and self.response_format not in ("json", "text"):
            raise InvalidRequest(
                "stream=true sends transcript events; use response_format json or text",
                param="stream",
            )
        if self.language is not None and self.language not in recognizer.languages:
            raise InvalidRequest(
                f"language {self.language!r} is not supported by {recognizer.name}; "
                f"supported: {', '.join(recognizer.languages)}",
                param="language",
            )
        if not 0.0 <= self.temperature <= 1.0:
            raise InvalidRequest("temperature must be between 0 and 1", param="temperature")


async def transcription(
    state: ServerState, request: Request, data: bytes, ask: TranscriptionAsk
) -> Response:
    """Decode the upload, charge its seconds, recognise it, answer in the asked format."""
    speech = speech_of(state)
    name, recognizer = speech.recognizer(ask.model)
    _check_key(speech, name, ask.model)
    ask.check(recognizer)
    ctx = get_context(request)
    ctx.model = name
    audio: Decoded = await anyio.to_thread.run_sync(speech.decode, data, recognizer)
    seconds = max(1, math.ceil(audio.duration))
    guard = request_guard.get()
    if guard is not None:
        await guard.reserve(seconds, room=0)
    ctx.usage = {"prompt_tokens": seconds, "completion_tokens": 0}
    if ask.stream:
        return EventStream(_transcript_events(recognizer, audio, ask, ctx.usage), _nothing)
    transcript: Transcript = await anyio.to_thread.run_sync(
        lambda: transcribe(
            recognizer,
            audio,
            language=ask.language,
            prompt=ask.prompt,
            words="word" in ask.granularities,
            translate=ask.translate,
            temperature=ask.temperature,
        )
    )
    text = transcript.text
    if guard is not None:
        await guard.consume(len(text))
    ctx.usage = {"prompt_tokens": seconds, "completion_tokens": len(text)}
    return _transcript_response(transcript, ask)


async def _nothing() -> None:
    return None


def _transcript_response(transcript: Transcript, ask: TranscriptionAsk) -> Response:
    fmt = ask.response_format
    if fmt == "text":
        return PlainTextResponse(transcript.text)
    if fmt == "srt":
        return PlainTextResponse(srt(transcript.segments))
    if fmt == "vtt":
        return PlainTextResponse(vtt(transcript.segments), media_type="text/vtt")
    if fmt == "json":
        return JSONResponse(Transcription(text=transcript.text).model_dump())
    verbose = TranscriptionVerbose(
        task="translate" if ask.translate else "transcribe",
        language=_LANGUAGE_NAMES.get(transcript.language, transcript.language),
        duration=round(transcript.duration, 3),
        text=transcript.text,
        segments=[
            TranscriptionSegment(
                id=s.id,
                seek=s.seek,
                start=s.start,
                end=s.end,
                text=s.text,
                tokens=list(s.tokens),
                temperature=s.temperature,
                avg_logprob=s.avg_logprob,
                compression_ratio=s.compression_ratio,
                no_speech_prob=s.no_speech_prob,
            )
            for s in transcript.segments
        ]
        if "segment" in ask.granularities
        else None,
        words=[
            TranscriptionWord(word=w.word.strip(), start=w.start, end=w.end)
            for s in transcript.segments
            for w in s.words
        ]
        if "word" in ask.granularities
        else None,
    )
    return JSONResponse(verbose.model_dump(exclude_none=True))


async def _transcript_events(
    recognizer: SpeechRecognizer, audio: Decoded, ask: TranscriptionAsk, usage: dict[str, int]
) -> AsyncIterator[bytes]:
    """OpenAI's transcription stream: a ``transcript.text.delta`` per recognised segment as
    it is decoded, then ``transcript.text.done`` with the whole text."""
    parts: list[str] = []
    try:
        _, segments = await anyio.to_thread.run_sync(
            lambda: stream_segments(
                recognizer,
                audio,
                language=ask.language,
                prompt=ask.prompt,
                temperature=ask.temperature,
            )
        )
        while True:
            segment = await anyio.to_thread.run_sync(next, segments, None)
            if segment is None:
                break
            delta = segment.text.strip()
            if not delta:
                continue
            delta = (" " if parts else "") + delta
            parts.append(delta)
            yield sse({"type": "transcript.text.delta", "delta": delta, "logprobs": None})
        text = "".join(parts)
        guard = request_guard.get()
        if guard is not None:
            await guard.consume(len(text))
        usage["completion_tokens"] = len(text)
        yield sse({"type": "transcript.text.done", "text": text, "logprobs": None})
    except Exception as exc:  # after the 200 went out, errors travel as an event
        yield sse(describe(exc)[1])
    yield DONE


class AudioStream(StreamingResponse):
    """Audio bytes as they are encoded; ``on_close`` always runs (done, failed or gone)."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]],
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self._chunks = chunks
        self._on_close = on_close

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except OSError as exc:
            raise ClientGone() from exc
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
                await self._on_close()


async def speech(state: ServerState, request: Request, req: SpeechRequest) -> Response:
    """Synthesise ``req.input``; the audio streams out as it is produced and encoded."""
    service = speech_of(state)
    name, synthesizer = service.synthesizer(req.model)
    _check_key(service, name, req.model)
    voice = synthesizer.voice(req.voice)
    if not req.input.strip():
        raise InvalidRequest("input is blank: there is nothing to speak", param="input")
    ctx = get_context(request)
    ctx.model = name
    chars = len(req.input)
    guard = request_guard.get()
    if guard is not None:
        await guard.reserve(chars, room=0)
    ctx.usage = {"prompt_tokens": chars, "completion_tokens": 0}
    try:
        running: SynthesisStream = await anyio.to_thread.run_sync(
            synthesizer.stream, req.input, voice, req.speed
        )
    except Exception:
        if guard is not None:
            await guard.refund(chars)
        raise
    encoder = Encoder(req.response_format, running.sample_rate)

    async def close() -> None:
        await anyio.to_thread.run_sync(running.close)

    return AudioStream(
        _audio_chunks(running, encoder, ctx.usage),
        close,
        encoder.media_type,
        headers={"x-voice": voice.id, "x-sample-rate": str(OUTPUT_RATE)},
    )


async def _audio_chunks(
    running: SynthesisStream, encoder: Encoder, usage: dict[str, int]
) -> AsyncIterator[bytes]:
    pcm_iter = iter(running)
    samples = 0

    def step() -> tuple[bytes, int] | None:
        pcm = next(pcm_iter, None)
        if pcm is None:
            return None
        return encoder.feed(pcm), len(pcm) // 2

    while True:
        got = await anyio.to_thread.run_sync(step)
        if got is None:
            break
        out, n = got
        samples += n
        if out:
            yield out
    tail = await anyio.to_thread.run_sync(encoder.finish)
    seconds = max(1, math.ceil(samples / running.sample_rate))
    guard = request_guard.get()
    if guard is not None:
        await guard.consume(seconds)
    usage["completion_tokens"] = seconds
    if tail:
        yield tail


def voices(state: ServerState, model: str | None) -> VoiceList:
    """Every voice of every synthesiser (or of ``model``)."""
    service = speech_of(state)
    names = [service.synthesizer(model)[0]] if model else list(service.synthesizers)
    cards = [
        VoiceCard(
            id=v.id,
            model=name,
            language=v.language,
            engine_voice=v.engine_voice,
            description=v.description,
        )
        for name in names
        for v in service.synthesizers[name].voices()
    ]
    return VoiceList(data=cards)

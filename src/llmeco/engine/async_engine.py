"""The native engine behind :class:`~llmeco.engine.protocol.EngineClient`.

A background thread runs :meth:`EngineCore.step` whenever there is work; each request's
outputs reach its own ``asyncio.Queue`` on the event loop that submitted it. Torch releases
the GIL during the model's forward, so the event loop stays responsive while a step runs.
Closing a request's stream (the client went away, the task was cancelled) aborts it, which
frees its KV blocks at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llmeco.engine.core import EngineCore, RequestState
from llmeco.engine.protocol import EngineStats, ModelInfo
from llmeco.engine.request import ChatPrompt, Prompt, RequestOutput, SamplingParams
from llmeco.engine.runner import ModelRunner, kv_bytes_per_token
from llmeco.engine.speculative import DraftModelProposer, Speculator, parse_speculative
from llmeco.errors import ConfigError, EngineDead, GenerateError, InvalidRequest
from llmeco.modeling.chat import chat_template_source, render_chat
from llmeco.modeling.tool_parsers import detect_tool_parser
from llmeco.settings import Settings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[RequestOutput | BaseException]

    def put(self, item: RequestOutput | BaseException) -> None:
        # RuntimeError: the submitting loop has closed, so nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class AsyncEngine:
    """Continuous-batching engine for one model, usable from any asyncio loop."""

    def __init__(self, build: Callable[[], tuple[EngineCore, ModelInfo]]) -> None:
        """Start the engine thread, which runs ``build`` (load the model) and then steps.

        Every torch call of the engine happens on that one thread: a second OpenMP team
        (e.g. weights loaded on the main thread) makes libgomp throttle its spin-waits when
        threads outnumber cores, which slowed decode by ~40% on a 2-core machine.
        """
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._stopping = False
        self._accepting = True
        self._dead: str | None = None
        self._build_error: BaseException | None = None
        self._core: EngineCore
        self._info: ModelInfo
        self._thread = threading.Thread(target=self._run, args=(build,), name="llmeco-engine")
        self._thread.daemon = True
        self._thread.start()
        self._ready.wait()
        if self._build_error is not None:
            raise self._build_error

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_ref(cls, ref: str, settings: Settings, name: str | None = None) -> AsyncEngine:
        """Load a model reference (``default``, a HF directory, a ``.gguf``) and start serving."""
        from llmeco.modeling.decoder import build_model
        from llmeco.modeling.load import (
            eos_token_ids,
            load_config,
            load_state_dict,
            load_tokenizer,
            resolve_model,
            select_device,
            select_dtype,
        )
        from llmeco.registry.checkout import resolve_local

        def build() -> tuple[EngineCore, ModelInfo]:
            if settings.threads:
                torch.set_num_threads(settings.threads)
            source = resolve_model(ref, settings, resolve_ref=resolve_local)
            device = select_device(settings)
            dtype = select_dtype(settings, device)
            config = load_config(source.path)
            try:
                model = build_model(config, device, dtype)
            except ConfigError as exc:
                raise ConfigError(f"{ref}: {exc}") from None
            model.load_hf_state_dict(load_state_dict(source.path, device, dtype))
            model.eval()
            method = settings.quantization_for(device.type)
            if method != "none":
                from llmeco.modeling.quant import quantize

                quantize(model, method)
            pack = settings.cpu_packed_linear and device.type == "cpu" and method == "none"
            if pack:
                from llmeco.modeling.packed import pack_linears

                pack_linears(model)
            tokenizer = load_tokenizer(source.path)
            eos = eos_token_ids(source.path, tokenizer)
            draft = None
            spec = parse_speculative(settings.speculative, settings.num_speculative_tokens)
            if spec.method == "draft":  # a smaller model of the same tokenizer
                draft_source = resolve_model(spec.draft_model, settings, resolve_ref=resolve_local)
                draft = build_model(load_config(draft_source.path), device, dtype)
                draft.load_hf_state_dict(load_state_dict(draft_source.path, device, dtype))
                draft.eval()
                if pack:
                    pack_linears(draft)
            return _build_core(
                model,
                tokenizer,
                eos,
                settings,
                name or source.name,
                source.origin,
                version=source.version,
                draft_model=draft,
            )

        return cls(build)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        eos_ids: list[int],
        settings: Settings,
        name: str,
        source: str = "",
        draft_model: Any = None,
    ) -> AsyncEngine:
        """Serve an already built :class:`~llmeco.modeling.decoder.DecoderModel` (and, for
        ``LLMECO_SPECULATIVE=draft:...``, an already built draft model)."""
        return cls(
            lambda: _build_core(
                model, tokenizer, eos_ids, settings, name, source, draft_model=draft_model
            )
        )

    # -- EngineClient ---------------------------------------------------------------
    @property
    def model_info(self) -> ModelInfo:
        """Name, context length and vocabulary of the served model."""
        return self._info

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (for apps that count tokens)."""
        return self._core.tokenizer

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids for a prompt; chats (and their tools) go through
        :func:`~llmeco.modeling.chat.render_chat`."""
        tok = self._core.tokenizer
        if isinstance(prompt, ChatPrompt):
            if not chat_template_source(tok):
                raise InvalidRequest(
                    f"model {self._info.name} has no chat template; use completions",
                    param="messages",
                )
            text = render_chat(
                tok,
                prompt.messages,
                tools=prompt.tools,
                add_generation_prompt=prompt.add_generation_prompt,
            )
            return list(tok(text, add_special_tokens=False)["input_ids"])
        if isinstance(prompt, str):
            return list(tok(prompt)["input_ids"])
        return [int(t) for t in prompt]

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of token ids (special tokens dropped)."""
        text: str = self._core.tokenizer.decode(list(token_ids), skip_special_tokens=True)
        return text

    async def generate(
        self, prompt: Prompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        """Submit a request and stream its outputs; closing the stream aborts it."""
        self._check_alive()
        ids = self.encode(prompt)
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        self._core.add_request(request_id, ids, params, stream)
        self._wake.set()
        done = False
        try:
            while True:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    done = True
                    raise item
                if item.finished:
                    done = True
                yield item
                if done:
                    return
        finally:
            if not done:
                self._core.abort(request_id)

    async def abort(self, request_id: str) -> None:
        """Stop a request and free its KV memory; unknown ids are ignored."""
        req = self._core.abort(request_id)
        if req is not None and isinstance(req.sink, _Stream):
            req.sink.put(GenerateError(f"request {request_id} was aborted"))

    async def check_health(self) -> None:
        """Raise ``EngineDead`` when the engine cannot serve."""
        self._check_alive()

    def acquire(self) -> AsyncEngine:
        """A plain engine serves every request itself (no hot swap)."""
        return self

    def stats(self) -> EngineStats:
        """Running/waiting counts and KV usage right now."""
        used, total = self._core.kv_usage()
        sched = self._core.scheduler
        cache = self._core.pool.stats
        return EngineStats(
            sched.num_running,
            sched.num_waiting,
            used,
            total,
            preemptions=sched.num_preemptions,
            prefix_queried_tokens=cache.queried_tokens,
            prefix_hit_tokens=cache.hit_tokens,
            spec_draft_tokens=self._core.speculator.stats.draft_tokens,
            spec_accepted_tokens=self._core.speculator.stats.accepted_tokens,
        )

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting, let running requests finish within ``timeout``, then stop."""
        self._accepting = False
        deadline = time.monotonic() + timeout
        while self._core.requests and time.monotonic() < deadline and self._dead is None:
            await asyncio.sleep(0.02)
        for request_id in list(self._core.requests):
            await self.abort(request_id)
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join, 5.0)
        self._dead = self._dead or "the engine has shut down"

    # -- internals ------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self._dead is not None:
            raise EngineDead(self._dead)
        if not self._accepting:
            raise EngineDead("the engine is shutting down")

    def _run(self, build: Callable[[], tuple[EngineCore, ModelInfo]]) -> None:
        try:
            self._core, self._info = build()
        except BaseException as exc:
            self._build_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop()

    def _loop(self) -> None:
        while not self._stopping:
            if not self._core.has_work():
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            try:
                outputs = self._core.step()
            except Exception as exc:  # a bug or a device error: fail loudly, not silently
                log.exception("engine step failed")
                self._fail_all(exc)
                return
            for req, out in outputs:
                self._deliver(req, out)

    def _deliver(self, req: RequestState, out: RequestOutput) -> None:
        if isinstance(req.sink, _Stream):
            req.sink.put(out)

    def _fail_all(self, exc: Exception) -> None:
        self._dead = f"engine step failed: {type(exc).__name__}: {exc}"
        for request_id in list(self._core.requests):
            req = self._core.abort(request_id)
            if req is not None and isinstance(req.sink, _Stream):
                req.sink.put(EngineDead(self._dead))


def _build_core(
    model: Any,
    tokenizer: Any,
    eos_ids: list[int],
    settings: Settings,
    name: str,
    source: str,
    *,
    version: str = "",
    draft_model: Any = None,
) -> tuple[EngineCore, ModelInfo]:
    """Reserve the KV cache and assemble the core for a loaded model."""
    if settings.fused_decode:
        from llmeco.modeling.fused import fuse_decode

        for decoder in (model, draft_model):
            if decoder is not None:
                fuse_decode(decoder, settings.build_cache)
    d = model.dims
    param = next(model.parameters())
    block = settings.kv_block_size
    num_blocks = max(1, settings.kv_cache_tokens // block)
    max_len = min(d.max_position_embeddings, num_blocks * block)
    if settings.max_model_len:
        max_len = min(max_len, settings.max_model_len)
    runner = ModelRunner(model, num_blocks, block, param.device, param.dtype)
    kv_bytes = (
        num_blocks
        * block
        * kv_bytes_per_token(d.num_layers, d.num_kv_heads, d.head_dim, param.dtype)
    )
    log.info("kv cache reserved", extra={"model": name, "blocks": num_blocks, "bytes": kv_bytes})
    core = EngineCore(
        runner,
        tokenizer,
        eos_ids,
        max_model_len=max_len,
        num_blocks=num_blocks,
        block_size=block,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        max_queue=settings.max_queue,
        enable_prefix_caching=settings.prefix_caching,
        speculator=_speculator(settings, draft_model, d.vocab_size, num_blocks, block),
    )
    info = ModelInfo(
        name=name,
        max_model_len=max_len,
        vocab_size=d.vocab_size,
        created=int(time.time()),
        eos_token_ids=tuple(eos_ids),
        source=source,
        version=version,
        tool_parser=detect_tool_parser(tokenizer),
    )
    return core, info


def _speculator(
    settings: Settings, draft_model: Any, vocab_size: int, num_blocks: int, block: int
) -> Speculator:
    """The engine's speculative decoding from ``LLMECO_SPECULATIVE`` (and its draft model)."""
    spec = parse_speculative(settings.speculative, settings.num_speculative_tokens)
    if spec.method != "draft":
        return Speculator(spec)
    if draft_model is None:
        raise ConfigError(f"LLMECO_SPECULATIVE={settings.speculative}: no draft model loaded")
    if draft_model.dims.vocab_size != vocab_size:
        raise ConfigError(
            f"draft model {spec.draft_model} has a vocabulary of {draft_model.dims.vocab_size} "
            f"tokens, the served model {vocab_size}: they must share the tokenizer"
        )
    param = next(draft_model.parameters())
    runner = ModelRunner(draft_model, num_blocks, block, param.device, param.dtype)
    return Speculator(spec, DraftModelProposer(runner, num_blocks, block))

"""Serving explanations: admission (a bound on concurrent work), worker threads, and the
glue between a request and :mod:`llmeco_explain.explain`.

Attribution runs forward and backward passes, so it never runs on the event loop and never
on the engine: an :class:`Explainer` owns a small thread pool (``max_running`` threads) and
admits at most ``max_running + max_waiting`` explanations at once; one more gets 429 with
``Retry-After`` straight away, before any model work or token charge. Generation requests
hold their admission for the whole request, so a burst of them cannot pile up on the engine
either. Models for attribution are a trained classifier's own in-process model, or a
generation model's weights loaded once more with transformers from the same local directory
(:class:`~llmeco_explain.targets.ModelCache`), never the engine's module.

Configuration (environment, read when the server first explains something):
``LLMECO_EXPLAIN_MAX_RUNNING`` (1), ``LLMECO_EXPLAIN_MAX_WAITING`` (2),
``LLMECO_EXPLAIN_MAX_TOKENS`` (256: tokens the attribution model may read),
``LLMECO_EXPLAIN_DEVICE`` (``cpu``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from llmeco.apps import tasks
from llmeco.apps.spec import PromptSpec
from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import ChatPrompt, SamplingParams
from llmeco.errors import (
    ConfigError,
    EngineDead,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    UnsafeFile,
)
from llmeco.server import apprun
from llmeco.server.generation import MIN_LOGPROB
from llmeco.server.openai.shared import usage
from llmeco.server.state import ServerState, get_context, request_guard
from llmeco_explain.explain import (
    Explained,
    Options,
    check_length,
    explain_answer,
    explain_classifier,
    explain_prompted,
)
from llmeco_explain.protocol import (
    Alternative,
    Answer,
    AnswerToken,
    ClassificationExplainRequest,
    ExplainResponse,
    GenerationExplainRequest,
    Target,
)
from llmeco_explain.targets import ModelCache

T = TypeVar("T")


class Explainer:
    """Worker threads, the admission bound and the attribution models of one server."""

    def __init__(
        self,
        *,
        max_running: int = 1,
        max_waiting: int = 2,
        max_tokens: int = 256,
        device: str = "cpu",
    ) -> None:
        if max_running < 1 or max_waiting < 0 or max_tokens < 1:
            raise ConfigError("explain: max_running >= 1, max_waiting >= 0, max_tokens >= 1")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.max_tokens = max_tokens
        self.models = ModelCache(device=device)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_running, "explain")
        self._admitted = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Explainer:
        """An explainer configured from ``LLMECO_EXPLAIN_*`` (see the module docstring).

        Raises:
            ConfigError: a value is not a number or out of range.
        """
        try:
            return cls(
                max_running=int(os.environ.get("LLMECO_EXPLAIN_MAX_RUNNING", "1")),
                max_waiting=int(os.environ.get("LLMECO_EXPLAIN_MAX_WAITING", "2")),
                max_tokens=int(os.environ.get("LLMECO_EXPLAIN_MAX_TOKENS", "256")),
                device=os.environ.get("LLMECO_EXPLAIN_DEVICE", "cpu"),
            )
        except ValueError as exc:
            raise ConfigError(f"LLMECO_EXPLAIN_*: {exc}") from exc

    @property
    def admitted(self) -> int:
        """Explanations running or waiting right now."""
        return self._admitted

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of the ``max_running + max_waiting`` places for the request.

        Raises:
            LimitExceeded: every place is taken (429 with Retry-After).
        """
        with self._lock:
            if self._admitted >= self.max_running + self.max_waiting:
                raise LimitExceeded(
                    f"{self._admitted} explanations are running or waiting (the most this "
                    "server takes); retry shortly",
                    retry_after=2.0,
                    limit="queue",
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread (call inside :meth:`admit`); a request
        cancelled before its job starts drops the job."""
        future = self._pool.submit(fn, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the worker threads after the running jobs."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def explainer_of(request: Request) -> Explainer:
    """The app's explainer, created on first use."""
    state = request.app.state
    found = getattr(state, "llmeco_explain", None)
    if found is None:
        found = state.llmeco_explain = Explainer.from_env()
    assert isinstance(found, Explainer)
    return found


def model_dir(state: ServerState, engine: EngineClient) -> Path:
    """The local safetensors directory the served generation model was loaded from
    (blocking: a GGUF reference stats its converted copy).

    Raises:
        InvalidRequest: the server cannot tell, or the directory is gone.
    """
    from llmeco.modeling.load import resolve_model
    from llmeco.registry.checkout import resolve_local

    info = engine.model_info
    ref = info.version or info.source
    if not ref:
        raise InvalidRequest(
            f"model {info.name} has no local weights this server knows of, so attributions "
            "cannot be computed for it",
            param="model",
        )
    try:
        return resolve_model(ref, state.settings, resolve_ref=resolve_local).path
    except (NotFound, ConfigError, UnsafeFile) as exc:
        raise InvalidRequest(
            f"model {info.name}: its weights cannot be loaded for attributions ({exc})",
            param="model",
        ) from exc


def _options(body: ClassificationExplainRequest | GenerationExplainRequest) -> Options:
    return Options(body.method, body.steps, body.baseline, body.window, body.occlusion)


def _response(
    request: Request,
    body: ClassificationExplainRequest | GenerationExplainRequest,
    model: str,
    explained: Explained,
    tokens: tuple[int, int],
    answer: Answer | None = None,
) -> ExplainResponse:
    a = explained.attribution
    return ExplainResponse(
        id=f"explain-{get_context(request).request_id}",
        model=model,
        kind=body.kind,
        method=a.method,
        target=Target(**explained.target),
        tokens=explained.tokens.pieces,
        scores=a.scores,
        segments=explained.tokens.segments,
        baseline_value=a.baseline_value,
        completeness_delta=a.completeness_delta,
        steps=a.steps,
        label=explained.label,
        probabilities=explained.probabilities or None,
        answer=answer,
        usage=usage(*tokens),
    )


async def _charged(tokens: int, job: Callable[[], Any]) -> Any:
    """Charge ``tokens`` input tokens to the key (429 over a limit), run ``job``, and give
    them back if it fails."""
    guard = request_guard.get()
    if guard is not None:
        await guard.reserve(tokens, room=0)
    try:
        return await job()
    except Exception:
        if guard is not None:
            await guard.refund(tokens)
        raise


async def explain_classification(
    state: ServerState, request: Request, body: ClassificationExplainRequest
) -> ExplainResponse:
    """A label and its attributions: a trained classifier's, or a prompted model's.

    Raises:
        InvalidRequest / NotFound / PermissionDenied / LimitExceeded / EngineDead: bad input,
            an unknown model, a key without the model, too busy, shutting down.
    """
    if not body.input.strip():
        raise InvalidRequest("input is empty", param="input")
    if state.draining:
        raise EngineDead("the server is shutting down; retry on another replica")
    explainer = explainer_of(request)
    options = _options(body)
    ctx = get_context(request)
    served = state.classifiers.get(body.model)
    if served is not None:
        state.check_model(served.name)
        ctx.model = served.name
        if body.labels is not None:
            raise InvalidRequest(
                f"{served.name} is a trained classifier with its own labels "
                f"({', '.join(served.labels)}); leave labels out",
                param="labels",
            )
        clf = served.classifier
        limit = min(explainer.max_tokens, clf.max_length)
        async with explainer.admit():
            count = (await anyio.to_thread.run_sync(served.token_counts, [body.input]))[0]
            explained = await _charged(
                count,
                lambda: explainer.run(
                    explain_classifier,
                    clf.model,
                    clf.tokenizer,
                    clf.labels,
                    body.input,
                    options,
                    max_tokens=limit,
                    target_label=body.target_label,
                ),
            )
        return _response(request, body, served.name, explained, (count, 0))
    if state.aliases.get(body.model, body.model) not in state.engines:
        names = [n for n in state.classifiers if state.visible(n)]
        raise NotFound(
            f"The model `{body.model}` does not exist. Available models: {state.available()}; "
            f"trained classifiers: {', '.join(names) or 'none'}.",
            param="model",
        )
    if body.labels is None:
        raise InvalidRequest(
            "labels is required when a generation model classifies (only a trained "
            "classifier brings its own labels)",
            param="labels",
        )
    if len(set(body.labels)) != len(body.labels):
        raise InvalidRequest("labels must be distinct", param="labels")
    name, engine = state.engine(body.model)
    ctx.model = name
    messages = tasks.classify(body.input, body.labels, None).messages
    count = len(engine.encode(ChatPrompt(messages)))
    check_length(count, explainer.max_tokens, "the prompt (chat template included)", "input")
    labels = list(body.labels)
    path = await anyio.to_thread.run_sync(model_dir, state, engine)

    def job() -> Explained:
        model, tokenizer = explainer.models.get(path)
        return explain_prompted(
            model,
            tokenizer,
            messages,
            labels,
            options,
            max_tokens=explainer.max_tokens,
            target_label=body.target_label,
        )

    async with explainer.admit():
        explained = await _charged(count, lambda: explainer.run(job))
    return _response(request, body, name, explained, (count, 0))


def _messages(body: GenerationExplainRequest) -> list[dict[str, str]]:
    if (body.messages is None) == (body.prompt is None):
        raise InvalidRequest("give exactly one of messages and prompt", param="messages")
    if body.messages is None:
        assert body.prompt is not None
        messages = [{"role": "user", "content": body.prompt}]
    else:
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise InvalidRequest("there is no non-empty user message to explain", param="messages")
    return messages


def _answer(choice: Any) -> Answer:
    tokens = [
        AnswerToken(
            token=lp.token,
            logprob=max(lp.logprob, MIN_LOGPROB),
            top_logprobs=[Alternative(token=t, logprob=max(v, MIN_LOGPROB)) for _, t, v in lp.top],
        )
        for lp in choice.logprobs
    ]
    return Answer(
        text="".join(choice.text),
        finish_reason=choice.finish_reason,
        tokens=tokens,
        logprob=sum(t.logprob for t in tokens),
    )


async def explain_generation(
    state: ServerState, request: Request, body: GenerationExplainRequest
) -> ExplainResponse:
    """Generate an answer on the engine (a governed generation, with per-token logprobs and
    alternatives), then attribute its log-probability to the user's tokens off the engine.

    Raises:
        InvalidRequest / NotFound / PermissionDenied / LimitExceeded / EngineDead: as
            :func:`explain_classification`, and a prompt too long to explain.
    """
    messages = _messages(body)
    if body.model in state.classifiers:
        raise InvalidRequest(
            f"{body.model} is a trained classifier; explain it with kind classification",
            param="model",
        )
    explainer = explainer_of(request)
    _, engine = state.engine(body.model)  # 404 / 403 / 503 before any work
    count = len(engine.encode(ChatPrompt(messages)))
    check_length(count, explainer.max_tokens, "the prompt (chat template included)", "messages")
    path = await anyio.to_thread.run_sync(model_dir, state, engine)  # 400 before generating
    options = _options(body)
    params = SamplingParams(
        max_tokens=body.max_tokens, temperature=body.temperature, logprobs=body.top_logprobs
    )
    async with explainer.admit():
        call = await apprun.start(state, request, body.model, PromptSpec(messages, params))
        try:
            (choice, *_) = await call.generation.collect(request)
        finally:
            await call.generation.close()
        answer = _answer(choice)
        ids = [lp.token_id for lp in choice.logprobs]
        text = answer.tokens[0].token if body.target == "first_token" and ids else answer.text
        now, before = call.engine.model_info, engine.model_info
        if (now.version, now.source) != (before.version, before.source):  # hot-swapped
            path = await anyio.to_thread.run_sync(model_dir, state, call.engine)

        def job() -> Explained:
            model, tokenizer = explainer.models.get(path)
            return explain_answer(
                model,
                tokenizer,
                messages,
                ids,
                text,
                options,
                mode=body.target,
                max_tokens=explainer.max_tokens,
            )

        explained = await explainer.run(job)
    gen = call.generation
    return _response(
        request, body, call.name, explained, (gen.prompt_tokens, gen.completion_tokens), answer
    )

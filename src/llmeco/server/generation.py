"""Running one API request on an engine: context checks, streams, cleanup, metrics.

Chat and completions both go through :class:`Generation`. It opens one engine request per
prompt, waits for each one's first output before any response is sent (so a full queue is a
429 and a too-long prompt a 400, not a broken stream), merges the streams, counts tokens
exactly, and on :meth:`Generation.close` aborts whatever has not finished.

When the request carries a :class:`~llmeco.server.state.RequestGuard` (auth on), the prompt
tokens are charged before anything reaches the engine (429 when over a limit), ``max_tokens``
is capped at the daily budget left, and output tokens are charged as they stream — before the
client sees them. A stream the budget runs out on ends every unfinished choice with
``finish_reason: "length"`` (the value OpenAI clients already handle for "a token limit cut
this short"; ``stop_reason`` on the delta says ``daily_token_budget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from starlette.requests import Request

from llmeco.engine.protocol import EngineClient
from llmeco.engine.request import RequestOutput, SamplingParams, SequenceDelta, TokenLogprob
from llmeco.errors import ContextLengthExceeded, EngineDead, GenerateError
from llmeco.observability.metrics import GenerationTimer
from llmeco.server.state import request_guard
from llmeco.server.streaming import until_disconnected

#: JSON has no -inf; OpenAI-compatible servers report impossible tokens with this instead.
MIN_LOGPROB = -9999.0

#: ``stop_reason`` of choices cut because the key's daily token budget ran out.
BUDGET_STOP = "daily_token_budget"


def resolve_max_tokens(context: int, prompt_len: int, requested: int | None) -> int:
    """``requested`` if prompt + it fits the context, else 400 naming both numbers.

    Unset means "the rest of the context" (as vLLM does for chat).
    """
    if requested is None:
        if prompt_len >= context:
            raise ContextLengthExceeded(prompt_len, 1, context)
        return context - prompt_len
    if prompt_len + requested > context:
        raise ContextLengthExceeded(prompt_len, requested, context)
    return requested


@dataclass
class ChoiceResult:
    """Everything one choice produced, for non-streamed responses."""

    index: int
    text: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


class _Stream:
    """One engine request, primed with its first output."""

    def __init__(self, engine: EngineClient, gen: AsyncGenerator[RequestOutput, None], rid: str):
        self.engine = engine
        self.gen = gen
        self.request_id = rid
        self.first: RequestOutput | None = None
        self.finished = False

    async def prime(self) -> None:
        try:
            self.first = await anext(self.gen)
        except StopAsyncIteration:
            self.finished = True
            raise GenerateError("the engine ended the request without any output") from None

    async def __aiter__(self) -> AsyncIterator[RequestOutput]:
        if self.first is not None:
            first, self.first = self.first, None
            self.finished = first.finished
            yield first
        while not self.finished:
            try:
                out = await anext(self.gen)
            except StopAsyncIteration:
                self.finished = True
                return
            self.finished = out.finished
            yield out

    async def close(self) -> None:
        """Close the engine's iterator (always) and abort the request if it had not ended."""
        unfinished = not self.finished
        self.finished = True
        with contextlib.suppress(RuntimeError):  # still running in a cancelled task
            await self.gen.aclose()
        if unfinished:
            await self.engine.abort(self.request_id)


class Generation:
    """The engine requests behind one API request (one per prompt, each with ``n`` choices)."""

    def __init__(
        self,
        engine: EngineClient,
        params: SamplingParams,
        request_id: str,
        timer: GenerationTimer,
    ) -> None:
        self.engine = engine
        self.params = params
        self.request_id = request_id
        self.timer = timer
        self.streams: list[_Stream] = []
        self.prompt_tokens = 0
        #: Of the prompt tokens, those the engine's prefix cache served (known once started).
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.prompt_logprobs: list[list[TokenLogprob | None] | None] = []
        self.prompt_ids: list[list[int]] = []
        self._closed = False
        self._guard = request_guard.get()
        self._charged = 0
        self._done: set[int] = set()

    @property
    def n(self) -> int:
        """Choices per prompt."""
        return self.params.n

    @property
    def fingerprint(self) -> str | None:
        """``system_fingerprint`` of the response: the registry version that produced it
        (``"support:3"``), so clients can tell which version answered across a hot swap."""
        return self.engine.model_info.version or None

    async def start(self, prompts: list[list[int]], request: Request) -> None:
        """Submit every prompt and wait for each first output (or the client to leave)."""
        if self._guard is not None:
            await self._charge_prompts(prompts)
        suffix = secrets.token_hex(4)
        for i, ids in enumerate(prompts):
            rid = f"{self.request_id}-{suffix}-{i}"
            gen = self.engine.generate(ids, self.params, rid)
            self.streams.append(_Stream(self.engine, _as_gen(gen), rid))
        try:
            await until_disconnected(self._prime_all(), request)
        except BaseException as exc:
            await self.close()
            if self._guard is not None and self._charged and isinstance(exc, Exception):
                await self._guard.refund(self._charged)  # the engine never ran it
            raise

    async def _charge_prompts(self, prompts: list[list[int]]) -> None:
        """Charge the prompt tokens and cap ``max_tokens`` at the daily budget left."""
        assert self._guard is not None
        tokens = sum(len(p) for p in prompts)
        left = await self._guard.reserve(tokens)
        self._charged = tokens
        if left is not None:
            share = max(1, left // (len(prompts) * self.n))
            if self.params.max_tokens is None or self.params.max_tokens > share:
                self.params.max_tokens = share

    async def _prime_all(self) -> None:
        results = await asyncio.gather(*(s.prime() for s in self.streams), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        self.prompt_tokens = sum(
            len(s.first.prompt_token_ids) for s in self.streams if s.first is not None
        )
        self.cached_tokens = sum(
            s.first.num_cached_tokens for s in self.streams if s.first is not None
        )
        #: Per prompt: its tokens' logprobs when ``prompt_logprobs`` was asked (first output).
        self.prompt_logprobs = [s.first.prompt_logprobs if s.first else None for s in self.streams]
        self.prompt_ids = [s.first.prompt_token_ids if s.first else [] for s in self.streams]

    async def deltas(self) -> AsyncIterator[tuple[int, SequenceDelta]]:
        """Every delta of every stream as ``(choice index, delta)``, counting tokens.

        Output is charged to the key before it is yielded; once the daily budget is spent,
        every unfinished choice gets a final ``length`` delta and the iteration ends.
        """
        async with contextlib.aclosing(self._merged()) as merged:
            async for prompt_index, out in merged:
                self.timer.observe(out)
                spent = 0
                for delta in out.deltas:
                    if delta.finish_reason == "abort":
                        raise EngineDead("the server stopped this generation (shutting down)")
                    spent += len(delta.token_ids)
                self.completion_tokens += spent
                left = None
                if self._guard is not None and spent:
                    left = await self._guard.consume(spent)
                for delta in out.deltas:
                    index = prompt_index * self.n + delta.index
                    if delta.finish_reason is not None:
                        self._done.add(index)
                    yield index, delta
                if left is not None and left <= 0:
                    for cut in self._budget_cut():
                        yield cut
                    return

    def _budget_cut(self) -> list[tuple[int, SequenceDelta]]:
        """Final deltas for every choice still running when the budget ran out."""
        cuts = []
        for index in range(len(self.streams) * self.n):
            if index not in self._done:
                self._done.add(index)
                delta = SequenceDelta(
                    index % self.n, [], "", finish_reason="length", stop_reason=BUDGET_STOP
                )
                cuts.append((index, delta))
        return cuts

    async def _merged(self) -> AsyncGenerator[tuple[int, RequestOutput], None]:
        if len(self.streams) == 1:
            async for out in self.streams[0]:
                yield 0, out
            return
        queue: asyncio.Queue[tuple[int, RequestOutput] | BaseException | None] = asyncio.Queue()

        async def pump(i: int, stream: _Stream) -> None:
            try:
                async for out in stream:
                    await queue.put((i, out))
            except Exception as exc:
                await queue.put(exc)
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(self.streams)]
        try:
            live = len(tasks)
            while live:
                item = await queue.get()
                if item is None:
                    live -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def collect(self, request: Request) -> list[ChoiceResult]:
        """Run to the end (or until the client leaves) and gather each choice."""
        results = [ChoiceResult(i) for i in range(len(self.streams) * self.n)]

        async def run() -> None:
            async for index, delta in self.deltas():
                choice = results[index]
                choice.text.append(delta.text)
                if delta.logprobs:
                    choice.logprobs.extend(delta.logprobs)
                if delta.finish_reason is not None:
                    choice.finish_reason = delta.finish_reason

        await until_disconnected(run(), request)
        return results

    async def close(self) -> None:
        """Abort unfinished engine requests and record metrics (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for s in self.streams:
            await s.close()
        self.timer.finish(self.prompt_tokens, self.completion_tokens)


def _as_gen(it: AsyncIterator[RequestOutput]) -> AsyncGenerator[RequestOutput, None]:
    """The engine's iterator as an async generator (wrapping plain iterators)."""
    if isinstance(it, AsyncGenerator):
        return it

    async def wrap() -> AsyncGenerator[RequestOutput, None]:
        try:
            async for out in it:
                yield out
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()

    return wrap()


def chat_logprobs(lps: list[TokenLogprob], top: int) -> dict[str, object]:
    """``choice.logprobs`` in the chat shape."""

    def entry(token: str, logprob: float) -> dict[str, object]:
        return {"token": token, "logprob": max(logprob, MIN_LOGPROB), "bytes": list(token.encode())}

    content = []
    for lp in lps:
        item = entry(lp.token, lp.logprob)
        item["top_logprobs"] = [entry(t, v) for _, t, v in lp.top[:top]]
        content.append(item)
    return {"content": content, "refusal": None}


def vllm_prompt_logprobs(
    lps: list[TokenLogprob | None] | None,
) -> list[dict[str, dict[str, object]] | None] | None:
    """``prompt_logprobs`` as vLLM returns it: per prompt token (first: null), a map from
    token id to ``{logprob, rank, decoded_token}`` holding the token and its top alternatives."""
    if lps is None:
        return None
    out: list[dict[str, dict[str, object]] | None] = []
    for lp in lps:
        if lp is None:
            out.append(None)
            continue
        entry = {str(lp.token_id): _vllm_entry(lp.logprob, lp.rank, lp.token)}
        for rank, (tid, text, value) in enumerate(lp.top, start=1):
            entry.setdefault(str(tid), _vllm_entry(value, rank, text))
        out.append(entry)
    return out


def _vllm_entry(logprob: float, rank: int | None, token: str) -> dict[str, object]:
    return {"logprob": max(logprob, MIN_LOGPROB), "rank": rank, "decoded_token": token}


def echo_logprobs(
    first_token: str,
    prompt: list[TokenLogprob | None],
    output: list[TokenLogprob],
    top: int,
) -> dict[str, object]:
    """``choice.logprobs`` of an ``echo`` completion: the prompt's tokens, then the output's.

    As OpenAI's legacy API and vLLM: the first prompt token (``first_token``) has a null
    logprob and null alternatives; offsets count characters from the start of the echo.
    """
    tokens: list[str] = [first_token]
    values: list[float | None] = [None]
    tops: list[dict[str, float] | None] = [None]
    offsets = [0]
    offset = len(first_token)
    for lp in [*(p for p in prompt if p is not None), *output]:
        tokens.append(lp.token)
        values.append(max(lp.logprob, MIN_LOGPROB))
        alternatives = {t: max(v, MIN_LOGPROB) for _, t, v in lp.top[:top]}
        alternatives.setdefault(lp.token, max(lp.logprob, MIN_LOGPROB))
        tops.append(alternatives)
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def completion_logprobs(lps: list[TokenLogprob], top: int, offset: int) -> dict[str, object]:
    """``choice.logprobs`` in the legacy completions shape; offsets start at ``offset``."""
    tokens, values, tops, offsets = [], [], [], []
    for lp in lps:
        tokens.append(lp.token)
        values.append(max(lp.logprob, MIN_LOGPROB))
        alternatives = {t: max(v, MIN_LOGPROB) for _, t, v in lp.top[:top]}
        alternatives.setdefault(lp.token, max(lp.logprob, MIN_LOGPROB))
        tops.append(alternatives)
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }

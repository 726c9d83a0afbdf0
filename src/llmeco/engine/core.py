"""The synchronous engine core: ``step()`` = schedule → run the model → sample → update.

It owns the scheduler, the runner and the per-request state (sampling state, incremental
detokenizers, grammar matchers), and returns the outputs each step produced. The async
layer (:mod:`llmeco.engine.async_engine`) drives it from a background thread; a lock makes
``add_request``/``abort`` safe to call from the event loop while a step is running.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmeco.engine.detokenizer import IncrementalDetokenizer
from llmeco.engine.kv_cache import BlockPool
from llmeco.engine.request import (
    RequestOutput,
    SamplingParams,
    SequenceDelta,
    TokenLogprob,
)
from llmeco.engine.runner import ModelRunner
from llmeco.engine.sampler import Sampler, SequenceSamplingState, make_generator
from llmeco.engine.scheduler import Scheduler
from llmeco.engine.scoring import PromptScores
from llmeco.engine.sequence import Sequence
from llmeco.engine.speculative import (
    Candidate,
    Draft,
    SpeculativeConfig,
    Speculator,
    speculation_allowed,
)
from llmeco.engine.structured import GrammarMatcher, StructuredOutputCompiler
from llmeco.errors import ContextLengthExceeded, InvalidRequest, Overloaded


@dataclass(eq=False)
class _SeqState:
    seq: Sequence
    sampling: SequenceSamplingState
    detok: IncrementalDetokenizer
    matcher: GrammarMatcher | None


@dataclass(eq=False)
class RequestState:
    """Everything the core tracks for one request (its ``n`` sequences)."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    arrival: float
    sink: Any  # opaque to the core: the async layer's stream
    seqs: list[_SeqState] = field(default_factory=list)
    #: Grammar matchers for sequences 1..n-1, handed over when they fork.
    pending_matchers: list[GrammarMatcher | None] = field(default_factory=list)
    forked: bool = False
    first_scheduled: float | None = None
    first_token: float | None = None
    #: The ``prediction`` text as token ids (a speculative draft source), if any.
    prediction_ids: list[int] | None = None
    #: Prompt-token logprobs being collected (``SamplingParams.prompt_logprobs``).
    prompt_scores: PromptScores | None = None

    @property
    def finished(self) -> bool:
        """All ``n`` sequences exist and have finished."""
        return (self.forked or self.params.n == 1) and all(s.seq.finished for s in self.seqs)


class EngineCore:
    """Continuous batching over one model; not thread-safe except add_request/abort."""

    def __init__(
        self,
        runner: ModelRunner,
        tokenizer: Any,
        eos_token_ids: list[int],
        max_model_len: int,
        num_blocks: int,
        block_size: int,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        max_queue: int,
        enable_prefix_caching: bool = False,
        speculator: Speculator | None = None,
    ) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.eos_token_ids = set(eos_token_ids)
        self.max_model_len = max_model_len
        self.max_queue = max_queue
        self.pool = BlockPool(num_blocks, block_size, enable_caching=enable_prefix_caching)
        self.scheduler = Scheduler(self.pool, max_num_seqs, max_num_batched_tokens)
        vocab = runner.model.dims.vocab_size
        self.sampler = Sampler(vocab, self._token_text)
        self._structured: StructuredOutputCompiler | None = None
        #: Speculative decoding (always present: a request's ``prediction`` uses it even
        #: when the engine's own method is off).
        self.speculator = speculator or Speculator(SpeculativeConfig())
        self.requests: dict[str, RequestState] = {}
        self._by_seq: dict[int, tuple[RequestState, _SeqState]] = {}
        self._seq_ids = itertools.count()
        self.lock = threading.Lock()

    # -- submission -----------------------------------------------------------------
    def add_request(
        self, request_id: str, prompt_ids: list[int], params: SamplingParams, sink: Any = None
    ) -> RequestState:
        """Queue a request; raises at once if it can never run or the queue is full."""
        if not prompt_ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        vocab = self.runner.model.dims.vocab_size
        if any(not 0 <= t < vocab for t in prompt_ids):
            raise InvalidRequest(f"prompt token ids must be in [0, {vocab})", param="prompt")
        max_tokens = params.max_tokens
        if max_tokens is None:
            max_tokens = self.max_model_len - len(prompt_ids)
            if max_tokens < 1:
                raise ContextLengthExceeded(len(prompt_ids), 1, self.max_model_len)
        if len(prompt_ids) + max_tokens > self.max_model_len:
            raise ContextLengthExceeded(len(prompt_ids), max_tokens, self.max_model_len)
        matcher_spec = params.structured
        if matcher_spec is not None and self._structured is None:
            self._structured = StructuredOutputCompiler(self.tokenizer, vocab)
        # Compile before taking the lock: it can take a while and may reject the schema.
        matchers: list[GrammarMatcher | None] = (
            [
                self._structured.matcher(matcher_spec, sorted(self.eos_token_ids))
                for _ in range(params.n)
            ]
            if matcher_spec is not None and self._structured is not None
            else [None] * params.n
        )
        with self.lock:
            if request_id in self.requests:
                raise InvalidRequest(f"request id {request_id!r} is already running")
            if self.scheduler.num_waiting >= self.max_queue:
                raise Overloaded(
                    f"the engine has {self.scheduler.num_waiting} requests waiting "
                    f"(limit {self.max_queue}); retry shortly",
                    retry_after=1.0,
                )
            now = time.monotonic()
            req = RequestState(request_id, list(prompt_ids), params, now, sink)
            if params.prediction:
                ids = params.prediction
                if isinstance(ids, str):
                    ids = self.tokenizer(ids, add_special_tokens=False)["input_ids"]
                # Out-of-vocabulary ids cannot be drafted (the draft would be rejected anyway).
                req.prediction_ids = [int(t) for t in ids if 0 <= int(t) < vocab]
            if params.prompt_logprobs is not None:
                req.prompt_scores = PromptScores(req.prompt_ids, params.prompt_logprobs)
            req.seqs = [self._new_seq(req, 0, max_tokens, matchers[0])]
            req.pending_matchers = matchers[1:]
            self.requests[request_id] = req
            self.scheduler.add(req.seqs[0].seq)
            return req

    def abort(self, request_id: str) -> RequestState | None:
        """Drop a request now: its sequences leave the batch and free their KV blocks."""
        with self.lock:
            req = self.requests.pop(request_id, None)
            if req is None:
                return None
            for s in req.seqs:
                if not s.seq.finished:
                    s.seq.finish_reason = "abort"
                    self.scheduler.finish(s.seq)
                self._by_seq.pop(s.seq.seq_id, None)
            return req

    def has_work(self) -> bool:
        """True when a step would do something."""
        return self.scheduler.has_work()

    # -- the step -------------------------------------------------------------------
    def step(self) -> list[tuple[RequestState, RequestOutput]]:
        """Run one engine step and return the outputs produced, per request."""
        with self.lock:
            plan = self.scheduler.schedule()
            if not plan:
                return []
            now = time.monotonic()
            scheduled = list(plan.scheduled)
            sample = [s.num_computed + n == s.num_tokens for s, n in scheduled]
            for seq, _ in scheduled:
                req, _st = self._by_seq[seq.seq_id]
                if req.first_scheduled is None:
                    req.first_scheduled = now
            drafts = self._draft(scheduled, sample, plan.num_tokens)
            num_logits = self._num_logits(scheduled, sample, drafts)

        logits = self.runner.execute(scheduled, sample, num_logits)

        with self.lock:
            rows: list[int] = []
            row_states: list[_SeqState] = []
            row_reqs: list[RequestState] = []
            done: list[tuple[RequestState, _SeqState, list[int]]] = []
            end = 0
            for i, ((seq, num_new), wants) in enumerate(zip(scheduled, sample, strict=True)):
                n_logits = num_logits[i] if num_logits is not None else int(wants)
                end += n_logits
                draft = drafts.get(i)
                if draft is not None:  # take the drafts back: only accepted ones return
                    del seq.token_ids[len(seq.token_ids) - len(draft.tokens) :]
                if seq.finished:  # aborted while the model ran
                    continue
                req, st = self._by_seq[seq.seq_id]
                scores = req.prompt_scores
                if scores is not None and not scores.complete and draft is None:
                    first_pos = seq.num_computed + num_new - n_logits
                    scores.add(logits[end - n_logits : end], first_pos, self._token_text)
                if draft is not None:
                    seq.num_computed += 1
                    st.sampling.allowed_mask = None
                    tokens = self.speculator.verify(
                        self.sampler, logits[end - n_logits : end], st.sampling, draft
                    )
                    done.append((req, st, tokens))
                    continue
                seq.num_computed += num_new
                if not wants:
                    continue
                targets = [st]
                if req.params.n > 1 and not req.forked:
                    targets += self._fork(req, st)
                for t in targets:
                    if t.seq.max_tokens == 0:  # scoring only: nothing to sample
                        done.append((req, t, []))
                        continue
                    rows.append(end - 1)
                    row_states.append(t)
                    row_reqs.append(req)
            tokens_of: list[list[int]] = []
            lps = None
            if rows:
                for t in row_states:
                    t.sampling.allowed_mask = t.matcher.allowed_mask() if t.matcher else None
                batch_logits = logits if rows == list(range(logits.shape[0])) else logits[rows]
                result = self.sampler(batch_logits, [t.sampling for t in row_states])
                tokens_of = [[tok] for tok in result.token_ids]
                lps = result.logprobs
            if lps is not None:
                lps = lps + [None] * len(done)
            row_reqs += [d[0] for d in done]
            row_states += [d[1] for d in done]
            tokens_of += [d[2] for d in done]
            if not row_reqs:
                return []
            return self._update(row_reqs, row_states, tokens_of, lps)

    def _draft(
        self, scheduled: list[tuple[Sequence, int]], sample: list[bool], num_tokens: int
    ) -> dict[int, Draft]:
        """Speculative drafts for decoding rows: extends their tokens and their step."""
        spec = self.speculator
        candidates: list[Candidate] = []
        for i, ((seq, num_new), wants) in enumerate(zip(scheduled, sample, strict=True)):
            if not wants or num_new != 1 or seq.num_output == 0:
                continue
            req, st = self._by_seq[seq.seq_id]
            if spec.config.method == "off" and req.prediction_ids is None:
                continue
            if not speculation_allowed(st.sampling, st.matcher is not None):
                continue
            left = min(seq.max_tokens - seq.num_output, self.max_model_len - seq.num_tokens)
            candidates.append(Candidate(i, seq, st.sampling, req.prediction_ids, left - 1))
        spec.gc(set(self._by_seq))
        if not candidates:
            return {}
        budget = self.scheduler.max_num_batched_tokens - num_tokens
        drafts = spec.propose(self.sampler, candidates, budget, self.scheduler._reserve)
        for i, d in drafts.items():
            seq = scheduled[i][0]
            seq.token_ids.extend(d.tokens)
            scheduled[i] = (seq, 1 + len(d.tokens))
        return drafts

    def _num_logits(
        self, scheduled: list[tuple[Sequence, int]], sample: list[bool], drafts: dict[int, Draft]
    ) -> list[int] | None:
        """Positions whose logits each row needs, or None when only the sampled ones."""
        counts = [int(w) for w in sample]
        for i, (seq, num_new) in enumerate(scheduled):
            scores = self._by_seq[seq.seq_id][0].prompt_scores
            if i in drafts or (scores is not None and not scores.complete):
                counts[i] = num_new
        return None if counts == [int(w) for w in sample] else counts

    def _update(
        self,
        reqs: list[RequestState],
        states: list[_SeqState],
        tokens: list[list[int]],
        logprobs: list[TokenLogprob | None] | None,
    ) -> list[tuple[RequestState, RequestOutput]]:
        now = time.monotonic()
        deltas: dict[str, tuple[RequestState, list[SequenceDelta]]] = {}
        for i, (req, st, token) in enumerate(zip(reqs, states, tokens, strict=True)):
            if req.first_token is None:
                req.first_token = now
            delta = self._extend(req, st, token)
            if logprobs is not None and req.params.logprobs is not None:
                lp = logprobs[i]
                delta.logprobs = [lp] if lp is not None else None
            deltas.setdefault(req.request_id, (req, []))[1].append(delta)
        outputs: list[tuple[RequestState, RequestOutput]] = []
        for req, ds in deltas.values():
            finished = req.finished
            out = RequestOutput(req.request_id, req.prompt_ids, ds, finished=finished)
            out.num_cached_tokens = req.seqs[0].seq.num_cached_tokens
            if req.prompt_scores is not None and not req.prompt_scores.sent:
                out.prompt_logprobs = req.prompt_scores.take()
            if req.first_scheduled is not None:
                out.queue_time = req.first_scheduled - req.arrival
            if req.first_token is not None:
                out.time_to_first_token = req.first_token - req.arrival
            if finished:
                self.requests.pop(req.request_id, None)
                for s in req.seqs:
                    self._by_seq.pop(s.seq.seq_id, None)
            outputs.append((req, out))
        return outputs

    def _extend(self, req: RequestState, st: _SeqState, tokens: list[int]) -> SequenceDelta:
        """Append one step's tokens (several after speculation, none when only scoring).

        After speculation every token but the last is an accepted draft whose K/V the
        verify step computed, so ``num_computed`` advances past each once it is appended
        (``token_ids[:num_computed]`` stay final for the prefix cache).
        """
        if not tokens:
            delta = SequenceDelta(st.seq.index, [], "", finish_reason="length")
            st.seq.finish_reason = "length"
            self.scheduler.finish(st.seq)
            return delta
        delta = self._append(req, st, tokens[0])
        for token in tokens[1:]:
            if delta.finish_reason is not None:
                break
            st.seq.num_computed += 1
            more = self._append(req, st, token)
            delta.token_ids += more.token_ids
            delta.text += more.text
            delta.finish_reason, delta.stop_reason = more.finish_reason, more.stop_reason
        return delta

    def _append(self, req: RequestState, st: _SeqState, token: int) -> SequenceDelta:
        """Add a sampled token to a sequence and decide whether it has finished."""
        seq, params = st.seq, req.params
        seq.token_ids.append(token)
        st.sampling.output_token_ids.append(token)
        if st.matcher is not None:
            st.matcher.accept(token)
        delta = SequenceDelta(st.seq.index, [token], "")
        if not params.ignore_eos and token in self.eos_token_ids:
            delta.finish_reason = "stop"
        elif token in params.stop_token_ids:
            delta.finish_reason, delta.stop_reason = "stop", token
        else:
            text, stop = st.detok.add(token)
            delta.text = text
            if stop is not None:
                delta.finish_reason, delta.stop_reason = "stop", stop
            elif st.matcher is not None and st.matcher.is_terminated:
                delta.finish_reason = "stop"
            elif seq.num_output >= seq.max_tokens or seq.num_tokens >= self.max_model_len:
                delta.finish_reason = "length"
        if delta.finish_reason is not None:
            if delta.stop_reason is None or isinstance(delta.stop_reason, int):
                delta.text += st.detok.flush()
            seq.finish_reason = delta.finish_reason
            self.scheduler.finish(seq)
        return delta

    # -- helpers --------------------------------------------------------------------
    def _new_seq(
        self, req: RequestState, index: int, max_tokens: int, matcher: GrammarMatcher | None
    ) -> _SeqState:
        seq = Sequence(
            seq_id=next(self._seq_ids),
            request_id=req.request_id,
            index=index,
            token_ids=list(req.prompt_ids),
            prompt_len=len(req.prompt_ids),
            max_tokens=max_tokens,
            arrival=req.arrival,
            skip_prefix_cache=req.params.skip_prefix_cache,
        )
        device = self.runner.device
        sampling = SequenceSamplingState(
            params=req.params,
            prompt_token_ids=req.prompt_ids,
            output_token_ids=[],
            generator=make_generator(req.params.seed, device, index),
        )
        detok = IncrementalDetokenizer(self.tokenizer, req.prompt_ids, req.params)
        st = _SeqState(seq, sampling, detok, matcher)
        self._by_seq[seq.seq_id] = (req, st)
        return st

    def _fork(self, req: RequestState, leader: _SeqState) -> list[_SeqState]:
        """Create sequences 1..n-1 sharing the leader's prefilled prompt."""
        req.forked = True
        matchers = req.pending_matchers
        children: list[_SeqState] = []
        copies: list[tuple[int, int]] = []
        for i in range(1, req.params.n):
            child = self._new_seq(req, i, leader.seq.max_tokens, matchers[i - 1])
            copy = self.scheduler.fork(leader.seq, child.seq)
            if copy is not None:
                copies.append(copy)
            req.seqs.append(child)
            children.append(child)
        if copies:
            self.runner.copy_blocks(copies)
        return children

    def _token_text(self, token_id: int) -> str:
        text: str = self.tokenizer.decode([token_id])
        return text

    def kv_usage(self) -> tuple[int, int]:
        """(blocks used, blocks total)."""
        return self.pool.num_used, self.pool.num_blocks

"""Continuous batching: which sequences compute how many tokens in the next step.

Pure Python, no torch, so it is unit-tested with hand-written model outputs. Every step
the scheduler first gives each running sequence what it needs (one token when decoding,
a chunk when its prompt is still being prefilled), then admits waiting sequences into the
remaining token budget. Nobody waits for another's batch to finish: sequences join and
leave the running set at every step. When the KV pool runs dry, the newest running
sequence is preempted (its blocks freed, its tokens recomputed later), so the oldest
always makes progress.

With prefix caching on (the pool's ``enable_caching``), admission first takes every
cached full block of the sequence's tokens from the pool and computes only the rest, and
every block that fills up is registered in the cache (:meth:`Scheduler.cache_computed_blocks`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from llmeco.engine.kv_cache import BlockPool, NoFreeBlocks, blocks_for
from llmeco.engine.request import RequestStatus
from llmeco.engine.sequence import Sequence


@dataclass
class SchedulerOutput:
    """The plan of one step."""

    #: Sequences to run, in batch order, with how many new tokens each computes.
    scheduled: list[tuple[Sequence, int]] = field(default_factory=list)
    #: Sequences that lost their KV blocks this step and went back to waiting.
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        """Tokens computed by the step."""
        return sum(n for _, n in self.scheduled)

    def __bool__(self) -> bool:
        return bool(self.scheduled)


class Scheduler:
    """Admits, runs, preempts and retires sequences under a token and a sequence budget."""

    def __init__(self, pool: BlockPool, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        self.pool = pool
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        #: Sequences preempted so far (the server's llmeco_num_preemptions_total).
        self.num_preemptions = 0

    @property
    def num_waiting(self) -> int:
        """Sequences waiting for KV memory or a batch slot."""
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        """Sequences holding KV memory."""
        return len(self.running)

    def has_work(self) -> bool:
        """True when a step would do something."""
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        """Queue a new sequence behind those already waiting."""
        seq.status = RequestStatus.WAITING
        self.waiting.append(seq)

    def add_running(self, seq: Sequence) -> None:
        """Put a sequence that already holds blocks (a fork) straight into the running set."""
        seq.status = RequestStatus.RUNNING
        seq.admitted = True
        self.running.append(seq)

    def finish(self, seq: Sequence) -> None:
        """Retire a sequence (finished or aborted) and free its blocks at once."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self._free(seq)
        seq.status = RequestStatus.FINISHED

    def schedule(self) -> SchedulerOutput:
        """Plan the next step: running sequences first, then admissions in arrival order."""
        out = SchedulerOutput()
        budget = self.max_num_batched_tokens
        if self.pool.enable_caching:
            for running in self.running:
                self.cache_computed_blocks(running)

        #: Hashes of the full blocks this step computes (prefix caching): a waiting sequence
        #: whose next uncached block is among them waits one step and then reuses it.
        computing: set[bytes] = set()
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            num_new = min(seq.num_tokens - seq.num_computed, budget)
            if num_new <= 0:  # nothing to compute (should not happen between steps)
                i += 1
                continue
            while not self._reserve(seq, seq.num_computed + num_new):
                victim = self.running[-1]
                self._preempt(victim, out)
                if victim is seq:
                    break
            if seq.status is not RequestStatus.RUNNING:
                continue  # seq preempted itself; the list shrank under i
            out.scheduled.append((seq, num_new))
            self._note_computing(seq, num_new, computing)
            budget -= num_new
            i += 1

        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if seq in out.preempted:
                break  # do not re-admit in the step that preempted it
            if not seq.block_ids and self.pool.enable_caching and not seq.skip_prefix_cache:
                if self._next_block_in(seq, computing):
                    break  # first come, first served: no overtaking
                admitted = self._admit_cached(seq, budget)
                if admitted is None:
                    break  # first come, first served: no overtaking
                num_new = admitted
                self._note_computing(seq, num_new, computing)
            else:
                num_new = min(seq.num_tokens - seq.num_computed, budget)
                if not self._reserve(seq, seq.num_computed + num_new):
                    break  # first come, first served: no overtaking
            self.waiting.popleft()
            seq.status = RequestStatus.RUNNING
            seq.admitted = True
            self.running.append(seq)
            out.scheduled.append((seq, num_new))
            budget -= num_new
        return out

    def fork(self, parent: Sequence, child: Sequence) -> tuple[int, int] | None:
        """Let ``child`` share ``parent``'s cached prompt blocks.

        Full blocks are shared by reference; a partly filled last block is copied because
        both sequences will write into it. Returns the ``(src, dst)`` block copy the runner
        must make before the next step, or None. When no block is free for the copy the
        child waits and recomputes its prompt instead.
        """
        child.num_computed = parent.num_computed
        full = parent.num_computed // self.pool.block_size
        partial = parent.num_computed % self.pool.block_size != 0
        copy: tuple[int, int] | None = None
        if partial:
            try:
                dst = self.pool.allocate()
            except NoFreeBlocks:
                child.num_computed = 0
                self.add(child)
                return None
            copy = (parent.block_ids[full], dst)
        for block in parent.block_ids[:full]:
            self.pool.share(block)
        child.block_ids = parent.block_ids[:full] + ([copy[1]] if copy else [])
        child.block_hashes = list(parent.block_hashes)
        child.num_cached_blocks = min(parent.num_cached_blocks, full)
        child.num_cached_tokens = parent.num_cached_tokens
        self.add_running(child)
        return copy

    def cache_computed_blocks(self, seq: Sequence) -> None:
        """Register each full block among ``seq``'s first ``num_computed`` tokens.

        The one place blocks enter the prefix cache. It is called at the start of every
        :meth:`schedule` (for running sequences) and before :meth:`finish` and preemption
        free a sequence's blocks, so the invariant callers must keep is: whenever the
        scheduler runs, ``seq.token_ids[:seq.num_computed]`` are final and their K/V is in
        the cache. Speculative decoding, whose verify step writes K/V for draft tokens that
        may be rejected, must therefore take rejected drafts back (shorten ``token_ids`` and
        ``num_computed``) before the next scheduler call; it may also call this method
        itself right after accepting tokens. No-op when caching is off. Sequences that
        skip the cache (``skip_prefix_cache``) still register theirs for others to reuse.
        """
        if not self.pool.enable_caching:
            return
        bs = self.pool.block_size
        full = min(seq.num_computed // bs, len(seq.block_ids))
        if full <= seq.num_cached_blocks:
            return
        hashes = seq.block_hashes_upto(full * bs, bs)
        for i in range(seq.num_cached_blocks, full):
            self.pool.register(seq.block_ids[i], hashes[i])
        seq.num_cached_blocks = full

    def reset_prefix_cache(self) -> int:
        """Drop every cached block no sequence holds; returns how many were dropped."""
        return self.pool.reset_cache()

    def _admit_cached(self, seq: Sequence, budget: int) -> int | None:
        """Give a sequence without blocks its cached prefix plus blocks for one chunk.

        Cached full blocks of its tokens are shared (never the block holding the last
        token: at least one token must be computed for the step to produce logits). Returns
        the tokens to compute this step, or None when the pool cannot hold the chunk (then
        nothing was taken).
        """
        bs = self.pool.block_size
        hashes = seq.block_hashes_upto(seq.num_tokens - 1, bs)
        hits = self.pool.lookup(hashes)
        cached = len(hits) * bs
        num_new = min(seq.num_tokens - cached, budget)
        fresh = blocks_for(cached + num_new, bs) - len(hits)
        revived = sum(1 for b in hits if self.pool.is_evictable(b))
        if fresh + revived > self.pool.num_free:
            return None
        for block in hits:
            self.pool.acquire_cached(block)
        seq.block_ids = list(hits)
        seq.num_cached_blocks = len(hits)
        for _ in range(fresh):
            seq.block_ids.append(self.pool.allocate())
        seq.num_computed = cached
        if not seq.admitted:
            seq.num_cached_tokens = cached
        stats = self.pool.stats
        stats.queried_tokens += seq.num_tokens
        stats.hit_tokens += cached
        return num_new

    def _note_computing(self, seq: Sequence, num_new: int, computing: set[bytes]) -> None:
        """Add the hashes of the prompt blocks ``seq`` fills this step to ``computing``."""
        if not self.pool.enable_caching or seq.num_computed >= seq.prompt_len:
            return
        bs = self.pool.block_size
        end = min(seq.num_computed + num_new, seq.prompt_len) // bs
        hashes = seq.block_hashes_upto(end * bs, bs)
        computing.update(hashes[seq.num_computed // bs : end])

    def _next_block_in(self, seq: Sequence, computing: set[bytes]) -> bool:
        """Whether the first block of ``seq``'s prompt not in the cache is being computed
        this step by a sequence scheduled before it (a burst of requests sharing a system
        prompt then computes it once, not once per request admitted with the first)."""
        if not computing:
            return False
        bs = self.pool.block_size
        hashes = seq.block_hashes_upto(seq.num_tokens - 1, bs)
        hits = len(self.pool.lookup(hashes))
        return hits < len(hashes) and hashes[hits] in computing

    def _reserve(self, seq: Sequence, num_tokens: int) -> bool:
        """Grow ``seq``'s block list to hold ``num_tokens``; False if the pool is short."""
        need = blocks_for(num_tokens, self.pool.block_size) - len(seq.block_ids)
        if need > self.pool.num_free:
            return False
        for _ in range(need):
            seq.block_ids.append(self.pool.allocate())
        return True

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        self.running.remove(seq)
        self._free(seq)
        seq.num_computed = 0
        seq.status = RequestStatus.WAITING
        self.waiting.appendleft(seq)
        out.preempted.append(seq)
        self.num_preemptions += 1

    def _free(self, seq: Sequence) -> None:
        if seq.block_ids:
            self.cache_computed_blocks(seq)
            self.pool.release(seq.block_ids)
            seq.block_ids = []
        seq.num_cached_blocks = 0

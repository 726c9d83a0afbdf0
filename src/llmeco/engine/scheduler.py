"""Continuous batching: which sequences compute how many tokens in the next step.

Pure Python, no torch, so it is unit-tested with hand-written model outputs. Every step
the scheduler first gives each running sequence what it needs (one token when decoding,
a chunk when its prompt is still being prefilled), then admits waiting sequences into the
remaining token budget. Nobody waits for another's batch to finish: sequences join and
leave the running set at every step. When the KV pool runs dry, the newest running
sequence is preempted (its blocks freed, its tokens recomputed later), so the oldest
always makes progress.
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
            budget -= num_new
            i += 1

        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if seq in out.preempted:
                break  # do not re-admit in the step that preempted it
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
        self.add_running(child)
        return copy

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
            self.pool.release(seq.block_ids)
            seq.block_ids = []

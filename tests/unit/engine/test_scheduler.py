"""The scheduler on its own: no model, no torch; 'model outputs' are written by hand."""

from __future__ import annotations

import subprocess
import sys

from llmeco.engine.kv_cache import BlockPool
from llmeco.engine.request import RequestStatus
from llmeco.engine.scheduler import Scheduler, SchedulerOutput
from llmeco.engine.sequence import Sequence


def seq(i: int, prompt_len: int, max_tokens: int = 100) -> Sequence:
    return Sequence(i, f"r{i}", 0, list(range(prompt_len)), prompt_len, max_tokens, float(i))


def run_step(s: Scheduler, out: SchedulerOutput, next_token: int = 7) -> None:
    """Pretend the model ran: advance progress and append a token where one is sampled."""
    for sq, n in out.scheduled:
        sq.num_computed += n
        if sq.num_computed == sq.num_tokens:
            sq.token_ids.append(next_token)
            if sq.num_output >= sq.max_tokens:
                s.finish(sq)


def test_scheduler_does_not_import_torch() -> None:
    code = "import sys, llmeco.engine.scheduler; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_new_request_joins_while_others_decode() -> None:
    s = Scheduler(BlockPool(100, 4), max_num_seqs=8, max_num_batched_tokens=64)
    a = seq(0, 10)
    s.add(a)
    out = s.schedule()
    assert [(x.seq_id, n) for x, n in out.scheduled] == [(0, 10)]
    run_step(s, out)
    b = seq(1, 5)
    s.add(b)
    out = s.schedule()
    # a decodes one token and b prefills in the same step: nobody waits for a batch.
    assert [(x.seq_id, n) for x, n in out.scheduled] == [(0, 1), (1, 5)]


def test_long_prompt_is_chunked_under_the_token_budget() -> None:
    s = Scheduler(BlockPool(100, 4), max_num_seqs=8, max_num_batched_tokens=16)
    a, b = seq(0, 40), seq(1, 3)
    s.add(a)
    s.add(b)
    plans = []
    for _ in range(3):
        out = s.schedule()
        plans.append([(x.seq_id, n) for x, n in out.scheduled])
        run_step(s, out)
    assert plans[0] == [(0, 16)]
    assert plans[1] == [(0, 16)]
    assert plans[2] == [(0, 8), (1, 3)]


def test_finished_sequence_frees_blocks_at_once() -> None:
    pool = BlockPool(10, 4)
    s = Scheduler(pool, max_num_seqs=4, max_num_batched_tokens=64)
    a = seq(0, 9, max_tokens=1)
    s.add(a)
    out = s.schedule()
    assert pool.num_used == 3
    run_step(s, out)
    assert a.status is RequestStatus.FINISHED
    assert pool.num_used == 0
    assert not s.has_work()


def test_abort_frees_waiting_and_running() -> None:
    pool = BlockPool(10, 4)
    s = Scheduler(pool, max_num_seqs=1, max_num_batched_tokens=64)
    a, b = seq(0, 4), seq(1, 4)
    s.add(a)
    s.add(b)
    s.schedule()
    assert s.num_running == 1 and s.num_waiting == 1
    s.finish(a)
    s.finish(b)
    assert pool.num_used == 0 and not s.has_work()


def test_max_num_seqs_bounds_the_batch() -> None:
    s = Scheduler(BlockPool(100, 4), max_num_seqs=2, max_num_batched_tokens=64)
    for i in range(4):
        s.add(seq(i, 2))
    out = s.schedule()
    assert [x.seq_id for x, _ in out.scheduled] == [0, 1]
    assert s.num_waiting == 2


def test_waiting_when_kv_is_full_then_admitted_in_order() -> None:
    pool = BlockPool(4, 4)  # 16 token slots
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    a, b, c = seq(0, 12, max_tokens=2), seq(1, 8), seq(2, 1)
    for x in (a, b, c):
        s.add(x)
    out = s.schedule()
    # b does not fit; c would, but first come first served: no overtaking.
    assert [x.seq_id for x, _ in out.scheduled] == [0]
    run_step(s, out)
    out = s.schedule()
    run_step(s, out)  # a finishes (2 tokens)
    assert a.finished
    out = s.schedule()
    assert [x.seq_id for x, _ in out.scheduled] == [1, 2]


def test_preempts_newest_when_decode_needs_a_block() -> None:
    pool = BlockPool(2, 4)  # 8 token slots
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    a, b = seq(0, 4), seq(1, 3)
    s.add(a)
    s.add(b)
    out = s.schedule()
    assert pool.num_used == 2
    run_step(s, out)  # a has 5 tokens (needs a 2nd block), b has 4
    out = s.schedule()
    assert out.preempted == [b]
    assert [x.seq_id for x, _ in out.scheduled] == [0]
    assert b.status is RequestStatus.WAITING and b.num_computed == 0 and not b.block_ids
    assert s.waiting[0] is b
    # b keeps its generated token and recomputes prompt + output once memory frees.
    assert b.num_tokens == 4


def test_fork_shares_full_blocks_and_copies_the_partial_one() -> None:
    pool = BlockPool(10, 4)
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    parent = seq(0, 6)
    s.add(parent)
    out = s.schedule()
    run_step(s, out)
    child = Sequence(1, "r0", 1, list(parent.token_ids[:6]), 6, 100, 0.0)
    copy = s.fork(parent, child)
    assert copy == (parent.block_ids[1], child.block_ids[1])
    assert child.block_ids[0] == parent.block_ids[0]
    assert pool.refcount(parent.block_ids[0]) == 2
    assert child.num_computed == 6 and child.status is RequestStatus.RUNNING
    s.finish(parent)
    assert pool.refcount(child.block_ids[0]) == 1
    s.finish(child)
    assert pool.num_used == 0

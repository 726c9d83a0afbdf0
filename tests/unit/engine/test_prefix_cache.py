"""Automatic prefix caching on its own: block hashes, the pool's LRU, and the scheduler's
reuse of cached blocks (no model, no torch; 'model outputs' are written by hand)."""

from __future__ import annotations

from llmeco.engine.kv_cache import BlockPool, NoFreeBlocks, block_hash
from llmeco.engine.scheduler import Scheduler, SchedulerOutput
from llmeco.engine.sequence import Sequence

BS = 4


def seq(i: int, tokens: list[int], max_tokens: int = 100, salt: str = "") -> Sequence:
    return Sequence(i, f"r{i}", 0, list(tokens), len(tokens), max_tokens, float(i), cache_salt=salt)


def run_step(s: Scheduler, out: SchedulerOutput, next_token: int = 7) -> None:
    """Pretend the model ran: advance progress and append a token where one is sampled."""
    for sq, n in out.scheduled:
        sq.num_computed += n
        if sq.num_computed == sq.num_tokens:
            sq.token_ids.append(next_token)
            if sq.num_output >= sq.max_tokens:
                s.finish(sq)


def plan(out: SchedulerOutput) -> list[tuple[int, int]]:
    return [(x.seq_id, n) for x, n in out.scheduled]


def test_block_hash_chains_the_prefix_and_salt() -> None:
    a = block_hash(None, [1, 2, 3, 4])
    assert a == block_hash(None, [1, 2, 3, 4])
    assert a != block_hash(None, [1, 2, 3, 5])
    assert a != block_hash(None, [1, 2, 3, 4], salt="adapter-x")
    # the same tokens after another prefix are another block
    assert block_hash(a, [5, 6, 7, 8]) != block_hash(block_hash(None, [0, 2, 3, 4]), [5, 6, 7, 8])
    # token ids are not confused across byte boundaries
    assert block_hash(None, [256]) != block_hash(None, [1, 0])


def test_sequence_hashes_only_full_blocks() -> None:
    s = seq(0, list(range(10)))
    hashes = s.block_hashes_upto(10, BS)
    assert len(hashes) == 2
    assert hashes[1] == block_hash(block_hash(None, [0, 1, 2, 3]), [4, 5, 6, 7])
    assert s.block_hashes_upto(7, BS) == hashes[:1]


def test_released_cached_blocks_are_reused_then_evicted_lru() -> None:
    pool = BlockPool(3, BS, enable_caching=True)
    a, b = pool.allocate(), pool.allocate()
    assert pool.register(a, b"A") and pool.register(b, b"B")
    assert not pool.register(a, b"A2")  # already registered
    pool.release([a])
    pool.release([b])
    assert pool.num_free == 3 and pool.num_used == 0 and pool.num_cached == 2
    # A hit revives an evictable block without allocating.
    assert pool.lookup([b"A", b"B", b"C"]) == [a, b]
    assert pool.lookup([b"B"]) == [b]
    assert pool.lookup([b"X", b"A"]) == []  # only a run from the start counts
    pool.acquire_cached(a)
    assert pool.refcount(a) == 1 and pool.num_free == 2
    # Allocation takes the never-cached block first, then evicts the oldest cached one.
    c = pool.allocate()
    assert c not in (a, b)
    assert pool.allocate() == b
    assert pool.lookup([b"B"]) == [] and pool.stats.evictions == 1
    assert pool.lookup([b"A"]) == [a]  # held blocks are never evicted
    try:
        pool.allocate()
    except NoFreeBlocks:
        pass
    else:
        raise AssertionError("the pool should be exhausted")


def test_release_order_keeps_the_first_blocks_longest() -> None:
    pool = BlockPool(4, BS, enable_caching=True)
    blocks = [pool.allocate() for _ in range(3)]
    for blk, h in zip(blocks, [b"0", b"1", b"2"], strict=True):
        pool.register(blk, h)
    pool.release(blocks)  # last block released first: evicted first
    pool.allocate()  # the never-cached block
    assert pool.allocate() == blocks[2]
    assert pool.allocate() == blocks[1]
    assert pool.lookup([b"0"]) == [blocks[0]]


def test_duplicate_content_keeps_the_first_copy() -> None:
    pool = BlockPool(2, BS, enable_caching=True)
    a, b = pool.allocate(), pool.allocate()
    assert pool.register(a, b"same")
    assert not pool.register(b, b"same")
    pool.release([b])
    assert pool.cached_hash(b) is None and pool.num_cached == 1


def test_caching_off_registers_nothing() -> None:
    pool = BlockPool(2, BS)
    a = pool.allocate()
    assert not pool.register(a, b"A")
    pool.release([a])
    assert pool.lookup([b"A"]) == [] and pool.num_cached == 0


def test_second_request_reuses_the_shared_prefix() -> None:
    s = Scheduler(BlockPool(32, BS, enable_caching=True), max_num_seqs=8, max_num_batched_tokens=64)
    system = list(range(100, 112))  # three full blocks
    a = seq(0, [*system, 1, 2])
    s.add(a)
    run_step(s, s.schedule())
    b = seq(1, [*system, 3])
    s.add(b)
    out = s.schedule()
    # b computes only its last token: the 12 system tokens come from a's blocks.
    assert plan(out) == [(0, 1), (1, 1)]
    assert b.num_computed == 12 and b.num_cached_tokens == 12
    assert b.block_ids[:3] == a.block_ids[:3]
    assert all(s.pool.refcount(blk) == 2 for blk in a.block_ids[:3])
    assert s.pool.stats.hit_tokens == 12 and s.pool.stats.queried_tokens == 14 + 13


def test_fully_cached_prompt_still_computes_its_last_token() -> None:
    s = Scheduler(BlockPool(32, BS, enable_caching=True), max_num_seqs=8, max_num_batched_tokens=64)
    prompt = list(range(8))  # exactly two blocks
    a = seq(0, prompt, max_tokens=1)
    s.add(a)
    run_step(s, s.schedule())
    assert a.finished
    b = seq(1, prompt)
    s.add(b)
    out = s.schedule()
    # one block reused; the block with the last token is recomputed (into a fresh block)
    assert plan(out) == [(1, 4)]
    assert b.num_cached_tokens == 4


def test_finished_blocks_stay_cached_until_memory_is_needed() -> None:
    pool = BlockPool(6, BS, enable_caching=True)
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    a = seq(0, list(range(9)), max_tokens=1)
    s.add(a)
    run_step(s, s.schedule())
    assert a.finished and pool.num_used == 0 and pool.num_cached == 2
    # An unrelated request big enough to need every block evicts the cached ones.
    c = seq(1, list(range(50, 74)), max_tokens=1)
    s.add(c)
    run_step(s, s.schedule())
    assert pool.stats.evictions >= 1
    d = seq(2, list(range(9)))
    s.add(d)
    s.schedule()
    assert d.num_cached_tokens < 8


def test_salt_keeps_caches_apart_and_skip_flag_computes_everything() -> None:
    s = Scheduler(BlockPool(32, BS, enable_caching=True), max_num_seqs=8, max_num_batched_tokens=64)
    prompt = list(range(9))
    s.add(seq(0, prompt))
    run_step(s, s.schedule())
    other = seq(1, prompt, salt="lora-1")
    s.add(other)
    assert (1, 9) in plan(s.schedule())
    scoring = seq(2, prompt)
    scoring.skip_prefix_cache = True
    s.add(scoring)
    assert (2, 9) in plan(s.schedule())
    assert scoring.num_cached_tokens == 0


def test_preempted_sequence_resumes_from_its_own_cached_blocks() -> None:
    pool = BlockPool(5, BS, enable_caching=True)
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    a, b = seq(0, list(range(8))), seq(1, list(range(20, 28)))
    s.add(a)
    s.add(b)
    run_step(s, s.schedule())  # 2 blocks each, 1 free
    for _ in range(4):  # both decode into their third block, then a fourth is needed
        out = s.schedule()
        run_step(s, out)
    assert s.num_preemptions >= 1
    victim = b if b.num_computed == 0 else a
    assert victim in s.waiting
    # the victim's full blocks were registered before they were freed: re-admission
    # starts from them instead of position 0
    while victim in s.waiting:
        survivor = a if victim is b else b
        s.finish(survivor)
        out = s.schedule()
    assert victim.num_computed >= 8


def test_fork_shares_cached_blocks_and_copies_the_partial_one() -> None:
    pool = BlockPool(16, BS, enable_caching=True)
    s = Scheduler(pool, max_num_seqs=8, max_num_batched_tokens=64)
    parent = seq(0, list(range(10)))
    s.add(parent)
    out = s.schedule()
    parent.num_computed += 10
    child = seq(1, list(range(10)))
    copy = s.fork(parent, child)
    assert copy is not None and copy[0] == parent.block_ids[2] and copy[1] == child.block_ids[2]
    assert child.block_ids[:2] == parent.block_ids[:2]
    assert out.scheduled
    s.schedule()  # registers the parent's two full blocks
    assert pool.num_cached == 2
    s.finish(parent)
    s.finish(child)
    assert pool.num_used == 0


def test_a_burst_sharing_an_uncached_prefix_computes_it_once() -> None:
    """Requests that arrive together with the same system prompt: the first computes it,
    the rest wait one step (not their turn to compute the same blocks again) and reuse it;
    a request with another prompt behind them is not overtaken by nor overtakes them."""
    s = Scheduler(BlockPool(64, BS, enable_caching=True), max_num_seqs=8, max_num_batched_tokens=64)
    system = list(range(100, 112))  # three full blocks
    burst = [seq(i, [*system, i, i + 1]) for i in range(3)]
    other = seq(3, [200, 201, 202, 203, 204])
    for sq in (*burst, other):
        s.add(sq)
    out = s.schedule()
    assert plan(out) == [(0, 14)]  # the others would have computed the 12 system tokens again
    run_step(s, out)
    out = s.schedule()
    # the system blocks are cached now: each later request computes its own 2 tokens only
    assert plan(out) == [(0, 1), (1, 2), (2, 2), (3, 5)]
    assert [sq.num_cached_tokens for sq in burst] == [0, 12, 12]
    assert burst[1].block_ids[:3] == burst[0].block_ids[:3] == burst[2].block_ids[:3]


def test_a_request_sharing_nothing_in_flight_is_admitted_at_once() -> None:
    s = Scheduler(BlockPool(64, BS, enable_caching=True), max_num_seqs=8, max_num_batched_tokens=64)
    a, b = seq(0, list(range(100, 110))), seq(1, list(range(300, 310)))
    s.add(a)
    s.add(b)
    assert plan(s.schedule()) == [(0, 10), (1, 10)]

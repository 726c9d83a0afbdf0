"""URL choice and circuit breakers of the gateway, with an injected clock."""

from __future__ import annotations

from llmeco.engine.backends.routing import BreakerState, CircuitBreaker, UrlPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_least_outstanding_wins_and_ties_round_robin() -> None:
    pool = UrlPool(["http://a/v1", "http://b/v1", "http://c/v1"])
    a, b, c = pool.endpoints
    a.outstanding, b.outstanding, c.outstanding = 3, 1, 2
    assert pool.pick() is b
    b.outstanding = 5
    assert pool.pick() is c
    for e in pool.endpoints:
        e.outstanding = 0
    picks = [pool.pick() for _ in range(6)]
    assert [p.url for p in picks if p] == [e.url for e in pool.endpoints] * 2


def test_pick_skips_excluded_and_ejected_urls() -> None:
    clock = Clock()
    pool = UrlPool(["http://a/v1", "http://b/v1"], failure_threshold=1, cooldown=5, clock=clock)
    a, b = pool.endpoints
    assert pool.pick(exclude=[a]) is b
    b.breaker.record_failure()
    assert pool.pick() is a
    assert pool.pick(exclude=[a]) is None
    a.breaker.record_failure()
    assert pool.pick() is None
    assert not pool.any_admitted()


def test_breaker_opens_at_threshold_then_half_opens_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allows_requests()
    breaker.record_success()  # a success resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allows_requests()
    assert breaker.trips == 1
    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN and not breaker.probe_due()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN and breaker.probe_due()
    assert not breaker.allows_requests()  # requests never act as probes


def test_failed_probe_reopens_for_a_full_cooldown_and_a_good_one_closes() -> None:
    clock = Clock()
    pool = UrlPool(["http://a/v1"], failure_threshold=1, cooldown=10, clock=clock)
    (a,) = pool.endpoints
    a.breaker.record_failure()
    clock.now += 10
    assert pool.due_for_probe() == [a]
    a.breaker.record_failure()  # the probe failed
    assert a.breaker.state is BreakerState.OPEN and pool.due_for_probe() == []
    assert a.breaker.trips == 1
    clock.now += 10
    assert a.breaker.state is BreakerState.HALF_OPEN
    a.breaker.record_success()  # the probe passed: re-admitted
    assert a.breaker.state is BreakerState.CLOSED and pool.pick() is a

"""Which URL of an upstream a request goes to: least outstanding requests, circuit breakers.

Each URL has a :class:`CircuitBreaker`. It is *closed* while the URL answers; after
``failure_threshold`` consecutive failures (connection refused, timeout, 502/503/504, a
broken response) it *opens* and the URL gets no requests. After ``cooldown`` seconds it is
*half-open*: a health probe (``GET <base>/models``) is due, and its result closes the
breaker (the URL is re-admitted) or opens it for another cool-down. Requests never act as
probes, so a client never pays for testing a URL that just failed.

:class:`UrlPool` picks, among URLs whose breaker is closed and that the request has not
tried yet, the one with the fewest requests in flight (ties go round-robin). The clock is
injectable so tests can step through the states without sleeping.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

Clock = Callable[[], float]


class BreakerState(IntEnum):
    """A breaker's state; the value is what the ``llmeco_upstream_breaker_state`` gauge shows."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Ejects a URL after consecutive failures and re-admits it after a successful probe."""

    def __init__(
        self, failure_threshold: int = 3, cooldown: float = 10.0, clock: Clock = time.monotonic
    ):
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        #: How many times the breaker opened (for tests and the status page).
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open once the cool-down since opening has passed."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows_requests(self) -> bool:
        """Whether client requests may go to this URL (only while closed)."""
        return self._opened_at is None

    def probe_due(self) -> bool:
        """Whether a health probe should run now (half-open)."""
        return self.state is BreakerState.HALF_OPEN

    def record_success(self) -> None:
        """A request or probe succeeded: reset the count and close the breaker."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """A request or probe failed: open at the threshold, or re-open a half-open breaker."""
        self._failures += 1
        if self._opened_at is not None:
            self._opened_at = self._clock()  # a failed probe: another full cool-down
        elif self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self.trips += 1


@dataclass
class Endpoint:
    """One URL of an upstream: its breaker and counters (read by the metrics at scrape time)."""

    url: str
    breaker: CircuitBreaker
    #: Requests sent and not yet finished (streams count until their last byte).
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    #: Order among equally loaded URLs (round-robin), updated on each pick.
    last_pick: int = field(default=0, repr=False)


class UrlPool:
    """The URLs of one upstream and the choice among them."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        failure_threshold: int = 3,
        cooldown: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.endpoints = [
            Endpoint(u, CircuitBreaker(failure_threshold, cooldown, clock)) for u in urls
        ]
        if not self.endpoints:
            raise ValueError("an upstream needs at least one URL")
        self._picks = itertools.count(1)

    def pick(self, exclude: Iterable[Endpoint] = ()) -> Endpoint | None:
        """The admitted URL with the fewest requests in flight, not in ``exclude``; None when
        every URL is ejected or excluded."""
        skip = {id(e) for e in exclude}
        ready = [e for e in self.endpoints if e.breaker.allows_requests() and id(e) not in skip]
        if not ready:
            return None
        chosen = min(ready, key=lambda e: (e.outstanding, e.last_pick))
        chosen.last_pick = next(self._picks)
        return chosen

    def due_for_probe(self) -> list[Endpoint]:
        """URLs whose breaker is half-open (a health probe decides whether they come back)."""
        return [e for e in self.endpoints if e.breaker.probe_due()]

    def any_admitted(self) -> bool:
        """Whether at least one URL takes requests."""
        return any(e.breaker.allows_requests() for e in self.endpoints)

"""The retry budget (Envoy semantics); Retry keeps one per route in its keyed state (gateway.services.state).

Envoy's `retry_budget`: retries in flight may be at most `budget_percent` of the requests active on the route,
but never fewer than `min_retry_concurrency`, so a route with little traffic can still retry. A retry that would
exceed it is not made: the caller returns what the last attempt gave. Unlike a fixed retry count, the budget
bounds the extra load a gateway adds to an upstream that is down for everyone (a retry storm).
"""

from __future__ import annotations


class RetryBudget:
    """Counters for one route in one worker. Not thread-safe: one event loop per worker uses it."""

    __slots__ = ("percent", "min_concurrency", "active", "retrying", "__weakref__")

    def __init__(self, percent: float, min_concurrency: int) -> None:
        self.percent = percent
        self.min_concurrency = min_concurrency
        #: Requests inside a Retry filter of this route now (first attempts and retries alike).
        self.active = 0
        #: Retries holding a slot now: from the decision to retry (backoff included) until that attempt ended.
        self.retrying = 0

    @property
    def allowed(self) -> int:
        """Retries that may be in flight at once now."""
        return max(self.min_concurrency, int(self.active * self.percent / 100))

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    def try_acquire(self) -> bool:
        """Take a retry slot if the budget allows one; the caller must `release` it after the attempt."""
        if self.retrying >= self.allowed:
            return False
        self.retrying += 1
        return True

    def release(self) -> None:
        self.retrying -= 1

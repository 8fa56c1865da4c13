"""Circuit breaker state machine (resilience4j semantics); CircuitBreaker keeps its breakers in keyed state.

A `Breaker` is CLOSED, OPEN or HALF_OPEN (resilience4j's numbering 0/1/2, also the metric value):

- CLOSED: every call is admitted and its outcome recorded in a count-based sliding window (the last
  `sliding_window_size` calls). Once the window holds `min(minimum_number_of_calls, sliding_window_size)` calls,
  a failure rate or a slow-call rate at or above its threshold opens the breaker. In the consecutive mode only a
  run of `consecutive_failures` failures in a row opens it.
- OPEN: every call is rejected until `wait_in_open` seconds (monotonic clock) have passed; the next call then
  moves the breaker to HALF_OPEN.
- HALF_OPEN: exactly `permitted_in_half_open` calls are admitted, every other call is rejected. When all of them
  have completed, their failure and slow-call rates decide: at or above a threshold → OPEN, else → CLOSED.

Each admitted call gets a ticket (the breaker's generation at admission). An outcome reported with a ticket from
an earlier generation is ignored, so a call admitted while CLOSED that finishes after the breaker opened cannot
count as a half-open probe. A call that ends without an outcome (the client went away) is `release`d: it counts
against nothing and, in HALF_OPEN, hands its permit back.

Everything here runs on one event loop thread between awaits, so no lock is needed (and none is held across an
await). State is per worker process: the CircuitBreaker filter keeps one breaker per route × pool in its keyed
state (gateway.services.state), so an unchanged breaker survives a reload.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from gateway.exchange import ExchangeKey
from gateway.metrics import METRICS

log = logging.getLogger("sluicegate.breaker")

Clock = Callable[[], float]
Mode = Literal["COUNT_BASED", "CONSECUTIVE_FAILURES"]

_FAILED = 1
_SLOW = 2

#: The failure that made a CircuitBreaker serve its fallback; FallbackHeaders reports it on the fallback request.
EXECUTION_EXCEPTION: ExchangeKey[BaseException] = ExchangeKey("circuit-breaker-execution-exception")


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class FailureStatus(Exception):
    """The upstream answered with a status listed in `statusCodes` (the cause FallbackHeaders reports)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status}")
        self.status = status


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds and sizes of one breaker; equal configs let a breaker survive a route reload. Times in seconds."""

    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    slow_call_duration: float = 60.0
    sliding_window_size: int = 100
    minimum_number_of_calls: int = 100
    mode: Mode = "COUNT_BASED"
    consecutive_failures: int = 5
    wait_in_open: float = 60.0
    permitted_in_half_open: int = 10
    #: SCG's breaker name, for the transition log lines only ("" when the route gave none).
    name: str = ""


class Window:
    """The last `size` outcomes as bit flags in a ring, with running failure and slow counts."""

    __slots__ = ("size", "ring", "next", "calls", "failed", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = bytearray(size)
        self.next = self.calls = self.failed = self.slow = 0

    def add(self, flags: int) -> None:
        if self.calls == self.size:  # full: the oldest outcome drops out
            old = self.ring[self.next]
            self.failed -= old & _FAILED
            self.slow -= (old & _SLOW) >> 1
        else:
            self.calls += 1
        self.ring[self.next] = flags
        self.next = (self.next + 1) % self.size
        self.failed += flags & _FAILED
        self.slow += (flags & _SLOW) >> 1

    def over(self, config: BreakerConfig) -> bool:
        """Whether the failure rate or the slow-call rate is at or above its threshold (percent)."""
        return (
            self.failed * 100 >= config.failure_rate_threshold * self.calls
            or self.slow * 100 >= config.slow_call_rate_threshold * self.calls
        )


class Breaker:
    """One breaker (route × pool). `try_acquire` → ticket or None; then exactly one of `record` / `release`."""

    def __init__(self, config: BreakerConfig, route: str, pool: str, clock: Clock = time.monotonic) -> None:
        self.config, self.route, self.pool, self.clock = config, route, pool, clock
        self.state = State.CLOSED
        self.generation = 0
        self.opened_at = 0.0
        self.window = Window(config.sliding_window_size)
        self.in_a_row = 0  # consecutive failures (CONSECUTIVE_FAILURES mode)
        self.admitted = 0  # half-open permits handed out and not released
        self.probes = Window(config.permitted_in_half_open)
        METRICS.breaker_state(route, pool, int(State.CLOSED))

    # -- admission --------------------------------------------------------------------------------------------
    def try_acquire(self) -> int | None:
        """A ticket for one call, or None when the call must be rejected (counted in the rejected metric)."""
        if self.state is State.OPEN and self.clock() - self.opened_at >= self.config.wait_in_open:
            self._to(State.HALF_OPEN)
        if self.state is State.CLOSED:
            return self.generation
        if self.state is State.HALF_OPEN and self.admitted < self.config.permitted_in_half_open:
            self.admitted += 1
            return self.generation
        METRICS.breaker_rejected(self.route, self.pool)
        return None

    def retry_after(self) -> int:
        """Whole seconds until the breaker admits calls again (at least 1): what a rejected client is told."""
        if self.state is State.OPEN:
            return max(1, math.ceil(self.opened_at + self.config.wait_in_open - self.clock()))
        return 1  # half-open with every permit taken: the probes decide within about one call's time

    # -- outcomes ---------------------------------------------------------------------------------------------
    def record(self, ticket: int, *, failed: bool, seconds: float) -> None:
        """The outcome of an admitted call: `failed`, and how long it took (slow when above the threshold)."""
        if ticket != self.generation:
            return  # admitted before the last transition: its outcome describes a state that is gone
        flags = (_FAILED if failed else 0) | (_SLOW if seconds > self.config.slow_call_duration else 0)
        if self.state is State.HALF_OPEN:
            self.probes.add(flags)
            if self.probes.calls >= self.config.permitted_in_half_open:
                self._to(State.OPEN if self.probes.over(self.config) else State.CLOSED)
        elif self.state is State.CLOSED:
            self._record_closed(flags)

    def release(self, ticket: int) -> None:
        """An admitted call ended without an outcome (client abort, a 4xx from the gateway): counts for nothing."""
        if ticket == self.generation and self.state is State.HALF_OPEN:
            self.admitted -= 1

    def _record_closed(self, flags: int) -> None:
        config = self.config
        if config.mode == "CONSECUTIVE_FAILURES":
            self.in_a_row = self.in_a_row + 1 if flags & _FAILED else 0
            if self.in_a_row >= config.consecutive_failures:
                self._to(State.OPEN)
            return
        window = self.window
        window.add(flags)
        if window.calls >= min(config.minimum_number_of_calls, config.sliding_window_size) and window.over(config):
            self._to(State.OPEN)

    def _to(self, state: State) -> None:
        previous, self.state = self.state, state
        self.generation += 1
        self.admitted = 0
        self.probes = Window(self.config.permitted_in_half_open)
        if state is State.OPEN:
            self.opened_at = self.clock()
        elif state is State.CLOSED:
            self.window = Window(self.config.sliding_window_size)
            self.in_a_row = 0
        METRICS.breaker_transition(self.route, self.pool, int(state), state.name)
        # Once per transition (never per call): WARNING when it opens, INFO when it probes or closes.
        level = logging.WARNING if state is State.OPEN else logging.INFO
        name = f" {self.config.name!r}" if self.config.name else ""
        log.log(
            level,
            "circuit breaker%s of route %r (pool %s): %s -> %s",
            name,
            self.route,
            self.pool,
            previous.name,
            state.name,
        )

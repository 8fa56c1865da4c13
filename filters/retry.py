"""Retry: send a failed request again (SCG's arguments and defaults), bounded by Envoy's retry budget.

Idempotency rules, in the order they apply:
- Only the configured `methods` (default GET) are retried; any other request passes through untouched.
- A request body is replayed only when it can be held in memory within `maxBodySize`: a body of unknown length
  (chunked) or a larger one is never buffered, and that request is never retried.
- Every attempt runs on `exchange.fork()`, so filters after Retry (rewrites, the breaker) run afresh each time.
- A response goes back to the writer only when no retry follows it; once returned, nothing is retried. A
  discarded response's body is closed at once (its connection is not reused while unread).
- A CircuitBreaker inside hands a failed call's fallback to Retry instead of answering with it: the fallback
  answers only when no retry follows (gateway.resilience.fallback); an open breaker's fallback is never retried.
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gateway.api import (
    DEFER_FALLBACK,
    EXCEPTION_REASONS,
    Block,
    BuildContext,
    ComponentConfig,
    CounterChild,
    DeferredFallback,
    Exchange,
    FilterServices,
    FilterSpec,
    GatewayError,
    Next,
    Response,
    RetryBudget,
    UpstreamTimeout,
    backoff_delays,
    comma_items,
    parse_data_size,
    parse_duration,
    retry_after_seconds,
    retry_reason,
    spring_enum,
    status_code,
)

Series = Literal["INFORMATIONAL", "SUCCESSFUL", "REDIRECTION", "CLIENT_ERROR", "SERVER_ERROR"]
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
ExceptionName = Literal[
    "IOException",
    "java.io.IOException",
    "ConnectException",
    "java.net.ConnectException",
    "TimeoutException",
    "java.util.concurrent.TimeoutException",
    "UpstreamError",
    "UpstreamConnectError",
    "UpstreamTimeout",
]
MAX_BODY = 16 << 20
#: The reasons retry_reason gives (the `reason` label of gateway_retries).
REASONS = ("status", "connect", "reset", "timeout")


def _statuses(value: object) -> object:
    listed = comma_items(value)
    return [status_code(v) for v in listed] if isinstance(listed, list) else listed


def _upper_list(value: object) -> object:
    listed = comma_items(value)
    return [spring_enum(v) for v in listed] if isinstance(listed, list) else listed


Duration = Annotated[float | None, BeforeValidator(parse_duration)]


class RetryConfig(ComponentConfig):
    #: SCG writes `backoff: {firstBackoff: 10ms, ...}` and `jitter: {randomFactor: 0.5}` (or `backoff.factor: 2`);
    #: a block written at all implies SCG's default for its first field.
    blocks = {
        "backoff": Block(("firstBackoff", "maxBackoff", "factor", "basedOnPreviousValue"), {"firstBackoff": "5ms"}),
        "jitter": Block(("randomFactor",), {"randomFactor": 0.5}),
    }

    retries: int = Field(3, ge=1, le=10, description="Retries after the first attempt (SCG: retries > 0).")
    statuses: Annotated[list[Annotated[int, Field(ge=100, le=599)]], BeforeValidator(_statuses)] = Field(
        [], max_length=64, description="Statuses that are retried: codes or HttpStatus names (`BAD_GATEWAY`)."
    )
    series: Annotated[list[Series], BeforeValidator(_upper_list)] = Field(
        ["SERVER_ERROR"], max_length=5, description="Status classes that are retried (SERVER_ERROR = any 5xx)."
    )
    methods: Annotated[list[Method], BeforeValidator(_upper_list)] = Field(
        ["GET"],
        min_length=1,
        max_length=8,
        description="Methods that may be sent more than once. Nothing else is ever retried; list POST or PATCH "
        "only when the upstream deduplicates them.",
    )
    exceptions: Annotated[list[ExceptionName], BeforeValidator(comma_items)] = Field(
        ["IOException", "TimeoutException"],
        max_length=9,
        description="Failures that are retried: IOException (connect error, reset, premature close = "
        "UpstreamConnectError/UpstreamError), ConnectException (connect only), TimeoutException (UpstreamTimeout).",
    )
    first_backoff: Duration = Field(
        None,
        ge=0,
        le=600,
        description="Backoff before the first retry, a duration (`10ms`; bare number: ms; bounds in s); unset: no "
        "backoff (SCG's default).",
    )
    max_backoff: Duration = Field(
        None, ge=0, le=600, description="Cap on every backoff delay (a duration); unset: no cap."
    )
    factor: int = Field(2, ge=1, le=100, description="Backoff growth: firstBackoff * factor^n.")
    based_on_previous_value: bool = Field(True, description="Next backoff = previous (jittered) backoff * factor.")
    random_factor: float | None = Field(
        None, ge=0, le=1, description="Jitter: each delay b becomes uniform in [b - b*r, b + b*r]; unset: none."
    )
    timeout: Duration = Field(
        None,
        gt=0,
        le=3600,
        description="Overall deadline for all attempts and backoffs (SCG `timeout`; a duration); unset: none.",
    )
    per_try_timeout: Duration = Field(
        None,
        gt=0,
        le=3600,
        description="Limit on each attempt until its response head (a duration); exceeded: 504, retried as a timeout.",
    )
    max_retry_after: Annotated[float, BeforeValidator(parse_duration)] = Field(
        2.0,
        ge=0,
        le=300,
        description="A 503/429 `Retry-After` up to this (a duration) is waited for before retrying; a longer one ends "
        "retrying and the response goes back as it is.",
    )
    budget_percent: float = Field(
        20.0, ge=0, le=100, description="Retry budget: retries in flight ≤ this % of the route's active requests."
    )
    min_retry_concurrency: int = Field(
        3, ge=0, le=10_000, description="Retries in flight always allowed, whatever the budget percent (low traffic)."
    )
    max_body_size: int = Field(
        65536,
        ge=0,
        le=MAX_BODY,
        description="Largest request body buffered for replay (bytes or `64KB`); larger or chunked: not retried.",
    )

    _size = field_validator("max_body_size", mode="before")(parse_data_size)

    @field_validator("random_factor", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # `true` would be read as 1.0 (the base class guards plain floats only)
            raise ValueError("expected a number, not a boolean")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RetryConfig:
        if not (self.series or self.statuses or self.exceptions):
            raise ValueError("series, statuses and exceptions may not all be empty")
        if self.first_backoff is None and self.max_backoff is not None:
            raise ValueError("maxBackoff needs firstBackoff (or a `backoff:` block)")
        if self.max_backoff is not None and self.first_backoff is not None and self.max_backoff < self.first_backoff:
            raise ValueError("maxBackoff must not be smaller than firstBackoff")
        return self


class RetryMetrics:
    """Retry's counters for one route, bound at build time (per request: one addition)."""

    __slots__ = ("retries", "refused")

    def __init__(self, services: FilterServices, route_id: str) -> None:
        metrics = services.metrics
        retries = metrics.counter(
            "gateway_retries",
            "Retry attempts sent by the Retry filter, by reason.",
            ["route", "reason"],
            max_series=10_000,
        )
        self.retries: dict[str, CounterChild] = {reason: retries.labels(route_id, reason) for reason in REASONS}
        self.refused = metrics.counter(
            "gateway_retry_budget_exhausted",
            "Retries not made because the route's retry budget was spent.",
            ["route"],
            max_series=10_000,
        ).labels(route_id)


class Retry:
    """Runs the inner chain up to 1 + `retries` times on forks of the exchange; see the module docstring."""

    def __init__(self, config: RetryConfig, budget: RetryBudget, metrics: RetryMetrics) -> None:
        self.config = config
        self.budget = budget
        self.metrics = metrics
        self.methods = frozenset(config.methods)
        self.statuses = frozenset(config.statuses)
        self.series = frozenset(config.series)
        self.reasons = frozenset().union(*(EXCEPTION_REASONS[e.rsplit(".", 1)[-1]] for e in config.exceptions))
        self.rng = random.Random()

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        self.budget.enter()  # every request of the route counts as active, retryable or not (Envoy)
        try:
            if exchange.method not in self.methods or not await self._replayable(exchange):
                return await call_next(exchange)
            return await self._run(exchange, call_next)
        finally:
            self.budget.leave()

    async def _replayable(self, exchange: Exchange) -> bool:
        """Make the body replayable when allowed (buffered within the limit); False: this request is not retried."""
        body = exchange.body
        if body.replayable:
            return True
        limit = self.config.max_body_size
        if body.length is None or body.length > limit:
            return False  # never buffered: a chunked or large body streams through once
        exchange.body = await body.buffer(limit)
        return True

    async def _run(self, exchange: Exchange, call_next: Next) -> Response:
        config, loop = self.config, asyncio.get_running_loop()
        deadline = exchange.deadline
        if config.timeout is not None:
            mine = loop.time() + config.timeout
            deadline = exchange.deadline = mine if deadline is None else min(deadline, mine)
        delays = backoff_delays(
            config.first_backoff,
            config.max_backoff,
            config.factor,
            config.based_on_previous_value,
            config.random_factor,
            self.rng,
        )
        retried, holding = 0, False
        try:
            while True:
                fork = exchange.fork()
                fork.attempt = exchange.attempt = retried + 1
                deferred = DeferredFallback()  # a breaker inside parks its fallback here (resilience.fallback)
                fork.set(DEFER_FALLBACK, deferred)
                outcome = await self._attempt(fork, call_next, deadline, loop)
                if holding:  # the retry's slot is held until its attempt ended
                    self.budget.release()
                    holding = False
                reason = None if deferred.final else self._reason(outcome)
                delay = next(delays) if reason is not None and retried < config.retries else None
                if delay is not None and isinstance(outcome, Response):
                    delay = self._honour_retry_after(outcome, delay)
                if delay is None or (deadline is not None and loop.time() + delay >= deadline):
                    return await _final(outcome, deferred)
                if not self.budget.try_acquire():
                    self.metrics.refused.inc()
                    return await _final(outcome, deferred)
                holding = True
                assert reason is not None
                if isinstance(outcome, Response):
                    await _discard(outcome)
                self.metrics.retries[reason].inc()
                retried += 1
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            if holding:
                self.budget.release()

    async def _attempt(
        self, fork: Exchange, call_next: Next, deadline: float | None, loop: asyncio.AbstractEventLoop
    ) -> Response | GatewayError:
        """One attempt, bounded by the per-try timeout and the deadline; a GatewayError is returned, not raised."""
        limit = self.config.per_try_timeout
        if deadline is not None:
            left = max(deadline - loop.time(), 0.0)
            limit = left if limit is None else min(limit, left)
        if limit is None:
            try:
                return await call_next(fork)
            except GatewayError as error:
                return error
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                return await call_next(fork)
        except GatewayError as error:
            return error
        except TimeoutError:
            if not timer.expired():
                raise
            return UpstreamTimeout(f"no response head within {limit:g}s (Retry per-try timeout or deadline)")

    def _reason(self, outcome: Response | GatewayError) -> str | None:
        """Why this outcome may be retried (the metric's reason), or None."""
        return retry_reason(outcome, self.statuses, self.series, self.reasons)

    def _honour_retry_after(self, response: Response, delay: float) -> float | None:
        """The delay before retrying after `response`, or None when its `Retry-After` asks for more than the cap."""
        if response.status not in (429, 503):
            return delay
        wait = retry_after_seconds(response.headers.get("retry-after"))
        if wait is None:
            return delay
        if wait > self.config.max_retry_after:
            return None  # the upstream asked for longer than we hold a client: its answer goes back as it is
        return max(delay, wait)


async def _final(outcome: Response | GatewayError, deferred: DeferredFallback) -> Response:
    """What the client gets when no retry follows: a breaker's parked fallback if the attempt left one (the
    failed response is then closed unsent), else the outcome itself (an error is raised)."""
    if deferred.answer is not None:
        if isinstance(outcome, Response):
            await _discard(outcome)
        return await deferred.answer()
    if isinstance(outcome, GatewayError):
        raise outcome
    return outcome


async def _discard(response: Response) -> None:
    """Close a response that will not be sent; its connection is not reused while its body is unread."""
    close = getattr(response.body, "aclose", None)
    if close is not None:
        await close()


def build(config: RetryConfig, context: BuildContext) -> Retry:
    # One budget per route in this worker, kept across a reload that keeps its config (in-flight counts and all).
    limits = (config.budget_percent, config.min_retry_concurrency)
    budget = context.services.state.local(context.route_id, limits, lambda: RetryBudget(*limits))
    return Retry(config, budget, RetryMetrics(context.services, context.route_id))


SPEC = FilterSpec(
    name="Retry",
    order=600,
    config=RetryConfig,
    build=build,
    summary="Retries failed GETs (5xx, connect errors, resets, timeouts; SCG's defaults) with optional backoff, "
    "per-try timeout and deadline, bounded by a per-route retry budget (20 % of active requests, at least 3).",
    example={"retries": 2, "statuses": "BAD_GATEWAY", "methods": "GET,PUT", "backoff": {"firstBackoff": "10ms"}},
    shortcut=(
        "retries",
        "statuses",
        "methods",
        "firstBackoff",
        "maxBackoff",
        "factor",
        "basedOnPreviousValue",
        "randomFactor",
        "timeout",
    ),
    status="alpha",
    replays=True,
)

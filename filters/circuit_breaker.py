"""CircuitBreaker: stop calling an upstream that keeps failing or slowing down (SCG + resilience4j semantics).

One breaker per route × upstream pool (the pool name of an `lb://` target, else the URI authority), per worker
process, kept across a reload when its config did not change (gateway.resilience.breaker). A call counts as
failed when the chain raises a gateway error of status 5xx (connect, reset, timeout, …) or any unexpected
exception, or when the response status is listed in `statusCodes`; a call is slow when its response head took
longer than `slowCallDurationThreshold`. A client that goes away (499) counts against nothing.

While the breaker is open, and after a failed call, the fallback answers when one is configured: `fallbackUri:
forward:/path` re-dispatches the request (as it entered this filter) to a local route, with the failure stored
for FallbackHeaders; `fallbackStatus` (+ body, content type) answers a static response. Inside a Retry, a failed
call's fallback is handed to Retry, which calls it only when it will not retry (gateway.resilience.fallback);
an open breaker's fallback answers at once and is never retried. Without a fallback an open breaker answers 503
problem+json with `Retry-After`, and a failed call's own response or error passes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from http import HTTPStatus
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from gateway.api import (
    DEFER_FALLBACK,
    EXECUTION_EXCEPTION,
    Breaker,
    BreakerConfig,
    BuildContext,
    CircuitOpen,
    ClientClosed,
    ComponentConfig,
    Exchange,
    FailureStatus,
    FilterServices,
    FilterSpec,
    GatewayError,
    Headers,
    Next,
    Response,
    Template,
    UpstreamRef,
    comma_items,
    header_value,
    parse_duration,
    spring_enum,
)

#: Spring HttpStatus names that Python's http.HTTPStatus spells differently.
_SPRING_NAMES = {"PAYLOAD_TOO_LARGE": 413, "URI_TOO_LONG": 414, "I_AM_A_TEAPOT": 418, "TOO_EARLY": 425}
MAX_BODY = 65_536


def parse_status(value: object) -> object:
    """Before-validator item: 500, "500" or an HttpStatus name ("INTERNAL_SERVER_ERROR") → int."""
    if isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            return int(text)
        if text in _SPRING_NAMES:
            return _SPRING_NAMES[text]
        if text in HTTPStatus.__members__:
            return HTTPStatus[text].value
        raise ValueError(f"unknown HTTP status {value!r}")
    return value


class CircuitBreakerConfig(ComponentConfig):
    name: str = Field(
        "", max_length=128, description="SCG's breaker name: shown in logs. Breakers are still one per route × pool."
    )
    fallback_uri: str | None = Field(
        None,
        max_length=2048,
        description="`forward:/path`: on an open breaker or a failed call, re-dispatch the request to the local "
        "route matching `/path` (URI variables such as `{segment}` are filled in).",
    )
    status_codes: list[int] = Field(
        [],
        max_length=64,
        description="Response statuses counted as failures (numbers or names such as BAD_GATEWAY).",
    )
    failure_rate_threshold: float = Field(
        50.0, gt=0, le=100, description="Failure rate (percent of the window) at or above which the breaker opens."
    )
    slow_call_rate_threshold: float = Field(
        100.0, gt=0, le=100, description="Slow-call rate (percent of the window) at or above which it opens."
    )
    slow_call_duration_threshold: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A call whose response head takes longer than this is slow: a Spring duration (`2s`, "
        "`500ms`; a bare number is ms), held in seconds.",
    )
    sliding_window_type: Literal["COUNT_BASED", "CONSECUTIVE_FAILURES"] = Field(
        "COUNT_BASED",
        description="COUNT_BASED: rates over the last `slidingWindowSize` calls. CONSECUTIVE_FAILURES: open "
        "after `consecutiveFailures` failures in a row.",
    )
    sliding_window_size: int = Field(100, ge=1, le=10_000, description="Calls in the count-based window.")
    minimum_number_of_calls: int = Field(
        100, ge=1, le=10_000, description="Calls the window must hold (at most its size) before rates are judged."
    )
    consecutive_failures: int = Field(
        5, ge=1, le=10_000, description="Failures in a row that open the breaker (CONSECUTIVE_FAILURES mode)."
    )
    wait_duration_in_open_state: float = Field(
        60.0,
        ge=0.001,
        le=86_400,
        description="Time the breaker stays open before admitting half-open probes: a Spring duration, in seconds.",
    )
    permitted_number_of_calls_in_half_open_state: int = Field(
        10, ge=1, le=1000, description="Exactly this many probes are admitted when half-open; the rest are rejected."
    )
    fallback_status: int | None = Field(
        None,
        ge=200,
        le=599,
        description="Static fallback (instead of `fallbackUri`): answer with this status when open or failed.",
    )
    fallback_body: str = Field("", max_length=MAX_BODY, description="Body of the static fallback response.")
    fallback_content_type: str = Field(
        "text/plain; charset=utf-8", min_length=1, max_length=256, description="Content-Type of the static fallback."
    )
    resume_without_error: bool = Field(
        False,
        description="SCG's option to answer an open breaker with an empty 200: not supported, so `true` is refused "
        "at load (a migrated route must not silently behave differently); `false` is SCG's default.",
    )

    _durations = field_validator("slow_call_duration_threshold", "wait_duration_in_open_state", mode="before")(
        parse_duration
    )
    _enum = field_validator("sliding_window_type", mode="before")(spring_enum)
    _content_type = field_validator("fallback_content_type")(header_value)

    @field_validator("status_codes", mode="before")
    @classmethod
    def _statuses(cls, value: object) -> object:
        items = comma_items(value)  # `500`, `500,502`, `BAD_GATEWAY` or a list of them
        return [parse_status(v) for v in items] if isinstance(items, list) else items

    @field_validator("status_codes")
    @classmethod
    def _status_range(cls, value: list[int]) -> list[int]:
        for code in value:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status (100-599)")
        return value

    @field_validator("resume_without_error")
    @classmethod
    def _no_resume(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "resumeWithoutError is not supported: use fallbackStatus (for example 200 with an empty "
                "fallbackBody) to answer an open breaker on purpose"
            )
        return value

    @field_validator("fallback_uri")
    @classmethod
    def _forward_only(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("forward:/") and "?" not in value and "#" not in value):
            raise ValueError("fallbackUri must be `forward:/path` (a local route), as in SCG")
        return value

    @model_validator(mode="after")
    def _one_fallback(self) -> Self:
        if self.fallback_uri is not None and self.fallback_status is not None:
            raise ValueError("give either fallbackUri or fallbackStatus, not both")
        return self

    def breaker_config(self) -> BreakerConfig:
        return BreakerConfig(
            failure_rate_threshold=self.failure_rate_threshold,
            slow_call_rate_threshold=self.slow_call_rate_threshold,
            slow_call_duration=self.slow_call_duration_threshold,
            sliding_window_size=self.sliding_window_size,
            minimum_number_of_calls=self.minimum_number_of_calls,
            mode=self.sliding_window_type,
            consecutive_failures=self.consecutive_failures,
            wait_in_open=self.wait_duration_in_open_state,
            permitted_in_half_open=self.permitted_number_of_calls_in_half_open_state,
        )


def pool_of(target: UpstreamRef | None) -> str:
    """The stable id of the upstream a call goes to: the pool name, else the URI's authority (or the URI)."""
    if target is None:
        return "-"
    return target.pool or target.authority or target.uri


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, route_id: str, services: FilterServices) -> None:
        self.route_id = route_id
        self.services = services
        self.config = dataclasses.replace(config.breaker_config(), name=config.name)
        self.status_codes = frozenset(config.status_codes)
        self.forward = Template(config.fallback_uri.removeprefix("forward:")) if config.fallback_uri else None
        self.static = (
            (config.fallback_status, config.fallback_body.encode(), config.fallback_content_type)
            if config.fallback_status is not None
            else None
        )
        self.has_fallback = self.forward is not None or self.static is not None
        # Breakers this route already has (a reload keeps unchanged ones): taken now, while the old table lives
        # and holds them. Keyed state: (route id, pool) → breaker, one per worker.
        self.breakers: dict[str, Breaker] = {
            key[1]: live
            for key, live in services.state.live()
            if isinstance(key, tuple)
            and key[0] == route_id
            and isinstance(live, Breaker)
            and live.config == self.config
        }

    def breaker(self, target: UpstreamRef | None) -> Breaker:
        pool = pool_of(target)
        breaker = self.breakers.get(pool)
        if breaker is None:
            config, route, clock = self.config, self.route_id, self.services.clock
            breaker = self.services.state.local((route, pool), config, lambda: Breaker(config, route, pool, clock))
            self.breakers[pool] = breaker
        return breaker

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        breaker = self.breaker(exchange.target)
        ticket = breaker.try_acquire()
        if ticket is None:
            detail = f"the circuit breaker of route {self.route_id!r} is {breaker.state.name.lower().replace('_', '-')}"
            slot = exchange.get(DEFER_FALLBACK) if self.has_fallback else None
            if slot is not None:
                slot.final = True  # a retry would meet the same open breaker: this answer is the last
            return await self.fallback(exchange, CircuitOpen(detail, breaker.retry_after()))
        # A forward fallback gets the request as it entered: inner filters must not have rewritten it.
        attempt = exchange.fork() if self.forward is not None else exchange
        started = time.monotonic()
        try:
            response = await call_next(attempt)
        except (asyncio.CancelledError, ClientClosed):
            breaker.release(ticket)  # SECURITY: a client that hangs up must not be able to trip the breaker
            raise
        except GatewayError as error:
            if error.status < 500:
                breaker.release(ticket)  # the request's own fault (400, 413 …), not the upstream's
                raise
            breaker.record(ticket, failed=True, seconds=time.monotonic() - started)
            return await self.failed(exchange, error, None)
        except Exception as error:
            breaker.record(ticket, failed=True, seconds=time.monotonic() - started)
            return await self.fallback(exchange, error)  # not a gateway error: Retry would not retry it either
        failed = response.status in self.status_codes
        breaker.record(ticket, failed=failed, seconds=time.monotonic() - started)
        if failed and self.has_fallback:
            return await self.failed(exchange, FailureStatus(response.status), response)
        return response

    async def failed(self, exchange: Exchange, cause: Exception, response: Response | None) -> Response:
        """A failed call's answer: the fallback now, or — when a Retry around this filter may try again — the
        failure itself (`response`, else `cause` raised) with the fallback parked for Retry to call when it gives
        up (gateway.resilience.fallback)."""
        slot = exchange.get(DEFER_FALLBACK) if self.has_fallback else None
        if slot is None:
            return await self.fallback(exchange, cause)
        slot.answer = functools.partial(self.fallback, exchange, cause)
        if response is not None:
            return response
        raise cause

    async def fallback(self, exchange: Exchange, cause: Exception) -> Response:
        """The configured fallback's response for `cause`; without a fallback, `cause` itself is raised."""
        if self.static is not None:
            status, body, content_type = self.static
            return Response(status, Headers([("Content-Type", content_type)]), body)
        if self.forward is None:
            raise cause
        forwarded = exchange.fork()
        forwarded.set(EXECUTION_EXCEPTION, cause)
        forwarded.set(DEFER_FALLBACK, None)  # the fallback route's own breaker must not park in this request's slot
        return await self.services.redispatch(forwarded, self.forward.render(exchange.path_vars))


def _same(key: object, live: object, route_id: str, config: BreakerConfig) -> bool:
    """Whether the live object under `key` is a breaker of `route_id` with this config (one a reload keeps)."""
    return isinstance(key, tuple) and key[0] == route_id and isinstance(live, Breaker) and live.config == config


def build(config: CircuitBreakerConfig, context: BuildContext) -> CircuitBreaker:
    return CircuitBreaker(config, context.route_id, context.services)


SPEC = FilterSpec(
    name="CircuitBreaker",
    order=700,
    config=CircuitBreakerConfig,
    build=build,
    summary="Opens after a failure or slow-call rate (resilience4j count window) or N failures in a row; while "
    "open, answers from `fallbackUri` (`forward:/path`) or a static fallback, else 503 with Retry-After.",
    example={"name": "myCircuitBreaker", "fallbackUri": "forward:/fallback", "statusCodes": [500, "BAD_GATEWAY"]},
    shortcut=("name", "fallbackUri"),
    status="alpha",
)

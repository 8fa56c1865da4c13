"""FaultInjection: delay or abort a share of requests, as Envoy's fault filter, for failure-injection tests.

It runs before Retry (band 450), so an injected abort is answered by the gateway as problem+json with the
configured status, never reaches the upstream, and is not retried; an injected delay holds the request before
anything else upstream of it happens. Percentages are kept in basis points, so 0.01 % steps work (0.1 % is 10).
With `header`, only requests carrying that header (with `headerValue`, that exact value) are considered.
"""

from __future__ import annotations

import asyncio
import random
from http import HTTPStatus
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterServices,
    FilterSpec,
    HeaderName,
    InjectedFault,
    Next,
    Response,
    header_value,
    parse_duration,
)

BASIS_POINTS = 10_000  # 100 %


def basis_points(percent: float) -> int:
    """A percentage as basis points (hundredths of a percent), rounded to the nearest."""
    return round(percent * 100)


def chosen(points: int, draw: int) -> bool:
    """Whether a uniform `draw` in [0, 10000) falls within `points` basis points."""
    return draw < points


class FaultInjectionConfig(ComponentConfig):
    delay: Annotated[float | None, BeforeValidator(parse_duration)] = Field(
        None,
        gt=0,
        le=300,
        description="Fixed delay to add, a duration (`500ms`, `2s`; bare number: ms; bounds in s); unset: none.",
    )
    delay_percent: float = Field(
        100.0, ge=0, le=100, description="Share of (matching) requests delayed, in % with 0.01 steps."
    )
    abort_status: int | None = Field(
        None, ge=200, le=599, description="Status the gateway answers with instead of forwarding (e.g. 503)."
    )
    abort_percent: float = Field(
        100.0, ge=0, le=100, description="Share of (matching) requests aborted, in % with 0.01 steps."
    )
    header: HeaderName | None = Field(
        None, description="Only requests carrying this header are considered (e.g. `x-fault`); unset: all."
    )
    header_value: Annotated[str | None, AfterValidator(lambda v: v if v is None else header_value(v))] = Field(
        None, max_length=1024, description="With `header`: only requests whose header has exactly this value."
    )

    @field_validator("abort_status", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        # `true` would be read as status 1; the base class only guards plain int/float fields.
        if isinstance(value, bool):
            raise ValueError("expected a status code, not a boolean")
        return value

    @model_validator(mode="after")
    def _something_to_inject(self) -> FaultInjectionConfig:
        if self.delay is None and self.abort_status is None:
            raise ValueError("configure a delay, an abortStatus, or both")
        if self.header_value is not None and self.header is None:
            raise ValueError("headerValue needs header")
        return self


class FaultInjection:
    __slots__ = (
        "delay",
        "delay_points",
        "abort_status",
        "abort_title",
        "abort_points",
        "header",
        "value",
        "delays",
        "aborts",
        "rng",
    )

    def __init__(self, config: FaultInjectionConfig, route_id: str, services: FilterServices) -> None:
        self.delay = config.delay
        self.delay_points = basis_points(config.delay_percent)
        self.abort_status = config.abort_status
        self.abort_title = _title(config.abort_status) if config.abort_status is not None else ""
        self.abort_points = basis_points(config.abort_percent)
        self.header = config.header
        self.value = config.header_value
        faults = services.metrics.counter(
            "gateway_faults_injected",
            "Faults applied by FaultInjection (delay, abort).",
            ["route", "kind"],
            max_series=10_000,
        )
        self.delays, self.aborts = faults.labels(route_id, "delay"), faults.labels(route_id, "abort")
        self.rng = random.Random()

    def _applies(self, exchange: Exchange) -> bool:
        if self.header is None:
            return True
        values = exchange.headers.get_all(self.header)
        return bool(values) and (self.value is None or self.value in values)

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        if self._applies(exchange):
            if self.delay is not None and chosen(self.delay_points, self.rng.randrange(BASIS_POINTS)):
                self.delays.inc()
                await asyncio.sleep(self.delay)
            if self.abort_status is not None and chosen(self.abort_points, self.rng.randrange(BASIS_POINTS)):
                self.aborts.inc()
                raise InjectedFault(self.abort_status, self.abort_title)
        return await call_next(exchange)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected Fault"


def build(config: FaultInjectionConfig, context: BuildContext) -> FaultInjection:
    return FaultInjection(config, context.route_id, context.services)


SPEC = FilterSpec(
    name="FaultInjection",
    order=450,
    config=FaultInjectionConfig,
    build=build,
    summary="Delays and/or aborts a share of requests (Envoy's fault filter), optionally only those carrying a "
    "header: for failure-injection tests. An abort is answered by the gateway and never retried.",
    example={"delay": "10ms", "delayPercent": 50, "abortStatus": 503, "abortPercent": 0.1, "header": "x-fault"},
    shortcut=("abortStatus", "abortPercent", "delay", "delayPercent"),
    status="alpha",
)

"""Before predicate: matches requests that arrive before an instant (SCG's `Before=<ZonedDateTime>`)."""

from __future__ import annotations

import time

from pydantic import Field, field_validator

from gateway.api import (
    INSTANT_DESCRIPTION,
    BuildContext,
    ComponentConfig,
    Exchange,
    PredicateSpec,
    instant_text,
    parse_instant,
)


class BeforeConfig(ComponentConfig):
    datetime: str = Field(description=f"The instant before which requests match. {INSTANT_DESCRIPTION}", max_length=100)

    _instant = field_validator("datetime", mode="before")(instant_text)


class BeforePredicate:
    __slots__ = ("epoch",)

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def __call__(self, exchange: Exchange) -> bool:
        return time.time() < self.epoch  # the clock is read per request: a route switches off by itself


def build(config: BeforeConfig, context: BuildContext) -> BeforePredicate:
    return BeforePredicate(parse_instant(config.datetime).timestamp())


SPEC = PredicateSpec(
    name="Before",
    config=BeforeConfig,
    build=build,
    summary="Matches requests arriving before `datetime` (ISO-8601 with an offset, optionally SCG's `[Zone/Id]`).",
    example={"datetime": "2017-01-20T17:42:47.789-07:00[America/Denver]"},
    shortcut=("datetime",),
    status="stable",
)

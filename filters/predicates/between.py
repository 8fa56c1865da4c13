"""Between predicate: matches requests that arrive after one instant and before a later one (SCG semantics)."""

from __future__ import annotations

import time

from pydantic import Field, ValidationInfo, field_validator

from gateway.api import (
    INSTANT_DESCRIPTION,
    BuildContext,
    ComponentConfig,
    Exchange,
    PredicateSpec,
    instant_text,
    parse_instant,
)


class BetweenConfig(ComponentConfig):
    datetime1: str = Field(description=f"Start: requests after it match. {INSTANT_DESCRIPTION}", max_length=100)
    datetime2: str = Field(
        description=f"End, later than `datetime1`: requests before it match. {INSTANT_DESCRIPTION}", max_length=100
    )

    _instants = field_validator("datetime1", "datetime2", mode="before")(instant_text)

    @field_validator("datetime2")
    @classmethod
    def _later(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("datetime1")
        if start is not None and parse_instant(value) <= parse_instant(start):
            raise ValueError(f"datetime2 ({value}) must be later than datetime1 ({start}); nothing could match")
        return value


class BetweenPredicate:
    __slots__ = ("start", "end")

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def __call__(self, exchange: Exchange) -> bool:
        return self.start < time.time() < self.end  # the clock is read per request


def build(config: BetweenConfig, context: BuildContext) -> BetweenPredicate:
    return BetweenPredicate(parse_instant(config.datetime1).timestamp(), parse_instant(config.datetime2).timestamp())


SPEC = PredicateSpec(
    name="Between",
    config=BetweenConfig,
    build=build,
    summary="Matches requests arriving after `datetime1` and before `datetime2` (which must be later).",
    example={
        "datetime1": "2017-01-20T17:42:47.789-07:00[America/Denver]",
        "datetime2": "2017-01-21T17:42:47.789-07:00[America/Denver]",
    },
    shortcut=("datetime1", "datetime2"),
    status="stable",
)

"""Weight predicate: splits traffic between the routes of a group in proportion to their weights (SCG semantics).

Every route of a group names the group and its weight (`Weight=group1, 8` and `Weight=group1, 2` send roughly 80%
and 20%). One draw per request and group decides which route of the group the request belongs to; every route of
the group sees the same answer, so exactly one of them can match. A weight of 0 never matches.

The draw is made by the compile's shared `WeightChooser` (gateway/routing/weights.py), which reads its weights
from a replaceable source on every draw: the canary work can change the split at run time without recompiling
the route table. The predicate keeps the chooser as its public `chooser` attribute for that purpose.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, PredicateSpec, WeightChooser


class WeightConfig(ComponentConfig):
    group: str = Field(
        description="Name of the group the route shares with its alternatives.", min_length=1, max_length=128
    )
    weight: int = Field(
        description="This route's share of the group's traffic, relative to the others' (0: none).",
        ge=0,
        le=1_000_000,
    )


class WeightPredicate:
    __slots__ = ("group", "route_id", "chooser")

    def __init__(self, group: str, route_id: str, chooser: WeightChooser) -> None:
        self.group, self.route_id, self.chooser = group, route_id, chooser

    def __call__(self, exchange: Exchange) -> bool:
        return self.chooser.chosen(self.group, exchange) == self.route_id


def check_uses(uses: Sequence[tuple[str, WeightConfig]]) -> Iterator[tuple[int, str]]:
    """One Weight per route and group (checked at validation, across the whole config)."""
    seen: set[tuple[str, str]] = set()
    for index, (route_id, config) in enumerate(uses):
        if (route_id, config.group) in seen:
            # SCG keeps the last weight silently; two weights for one route in one group is a mistake either way.
            yield index, f"route {route_id!r} already has a Weight in group {config.group!r}"
        seen.add((route_id, config.group))


def build(config: WeightConfig, context: BuildContext) -> WeightPredicate:
    chooser = context.weights.register(config.group, context.route_id, config.weight)
    return WeightPredicate(config.group, context.route_id, chooser)


SPEC = PredicateSpec(
    name="Weight",
    config=WeightConfig,
    build=build,
    summary="Sends each request to one route of `group`, chosen in proportion to the routes' `weight`s.",
    example={"group": "group1", "weight": 8},
    shortcut=("group", "weight"),
    status="stable",
    check_uses=check_uses,
)

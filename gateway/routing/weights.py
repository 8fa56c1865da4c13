"""Weighted choice between routes of a group (SCG's Weight predicate), with weights read at run time.

A compile registers each route's configured weight in its group. Per request, the chooser picks one member of
each group once (kept on the exchange, so every route of the group agrees) by drawing a bucket in [0, total):
random by default, or from a hash of a sticky key when a caller supplies `pick`. Weights are integers, so a
split like 99.9 / 0.1 is `999, 1` (or basis points `9990, 10`), independent of how many instances run.

The weights come from a `WeightSource` read on every choice; replacing the source (the canary work's live
weights) changes the split without recompiling the route table.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gateway.exchange import Exchange, ExchangeKey

#: group -> chosen route id, for this exchange
CHOICES: ExchangeKey[dict[str, str | None]] = ExchangeKey("weight-choices")

Members = Sequence[tuple[str, int]]
Pick = Callable[[Exchange, str, int], int]


class WeightSource(Protocol):
    """The current (route id, weight) members of a group, in a stable order; None when the group is unknown."""

    def members(self, group: str) -> Members | None: ...


class StaticWeights:
    """Weights as configured in routes.yaml."""

    def __init__(self, groups: Mapping[str, Members]) -> None:
        self._groups = {g: tuple(m) for g, m in groups.items()}

    def members(self, group: str) -> Members | None:
        return self._groups.get(group)


def random_bucket(exchange: Exchange, group: str, total: int) -> int:
    return random.randrange(total)


class WeightChooser:
    """Picks, once per exchange and group, which route of the group the request belongs to."""

    def __init__(self, source: WeightSource, pick: Pick = random_bucket) -> None:
        self.source = source
        self.pick = pick

    def chosen(self, group: str, exchange: Exchange) -> str | None:
        choices = exchange.get(CHOICES)
        if choices is None:
            choices = {}
            exchange.set(CHOICES, choices)
        elif group in choices:
            return choices[group]
        choice = self._draw(group, exchange)
        choices[group] = choice
        return choice

    def _draw(self, group: str, exchange: Exchange) -> str | None:
        members = self.source.members(group)
        if not members:
            return None
        total = sum(weight for _, weight in members)
        if total <= 0:
            return None
        bucket = self.pick(exchange, group, total)
        for route_id, weight in members:
            if bucket < weight:
                return route_id
            bucket -= weight
        return None


class WeightGroups:
    """Collects the Weight predicates of one compile; `chooser` serves them all."""

    def __init__(self) -> None:
        self._groups: dict[str, list[tuple[str, int]]] = {}
        self.chooser = WeightChooser(StaticWeights({}))

    def register(self, group: str, route_id: str, weight: int) -> WeightChooser:
        self._groups.setdefault(group, []).append((route_id, weight))
        self.chooser.source = StaticWeights(self._groups)
        return self.chooser

    def configured(self) -> Mapping[str, Members]:
        return {g: tuple(m) for g, m in self._groups.items()}

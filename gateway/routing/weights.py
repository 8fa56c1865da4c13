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
    """Where a chooser reads the weights: the configured ones, or live ones the canary work supplies."""

    def members(self, group: str) -> Members | None:
        """The group's current (route id, weight) pairs, in an order that is the same on every call and in every
        worker (the bucket → route mapping depends on it); None when the group is unknown.

        Weights are integers >= 0. Called on every draw, so it must be cheap and must not block.
        """
        ...


class StaticWeights:
    """Weights as configured in routes.yaml."""

    def __init__(self, groups: Mapping[str, Members]) -> None:
        self._groups = {g: tuple(m) for g, m in groups.items()}

    def members(self, group: str) -> Members | None:
        """The group's members in registration (routes file) order; None for an unknown group."""
        return self._groups.get(group)


def random_bucket(exchange: Exchange, group: str, total: int) -> int:
    """The default `Pick`: a uniformly random bucket in [0, total); `total` is > 0 (the chooser guarantees it).

    Not sticky: the same client may land on another route next time. Supply a `Pick` that hashes a stable key
    (a cookie, a user id) for sticky splits; it must return a value in [0, total).
    """
    return random.randrange(total)


class WeightChooser:
    """Picks, once per exchange and group, which route of the group the request belongs to."""

    def __init__(self, source: WeightSource, pick: Pick = random_bucket) -> None:
        self.source = source
        self.pick = pick

    def chosen(self, group: str, exchange: Exchange) -> str | None:
        """The id of the route of `group` this exchange belongs to, or None when no route can have it.

        None when the source does not know the group, or every weight is 0. The first call per exchange and
        group draws (reading the source's current weights); every later call for that exchange and group, from
        any route's Weight predicate, returns the same answer, cached on the exchange under `CHOICES` — so
        exactly one route of the group matches, even if the weights change meanwhile. Never raises unless the
        source or `pick` does.
        """
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
        """Add `route_id` with `weight` to `group` (order of registration is the draw order) and return the
        chooser every Weight predicate of this compile shares. Resets that chooser's source to the configured
        weights, the new member included: a live source is installed after the compile, not during it.

        Does not check for duplicates: registering a route twice in a group counts it twice (the Weight
        predicate refuses that at load, using `configured`).
        """
        self._groups.setdefault(group, []).append((route_id, weight))
        self.chooser.source = StaticWeights(self._groups)
        return self.chooser

    def configured(self) -> Mapping[str, Members]:
        """A snapshot of the weights registered so far, group -> (route id, weight) pairs in registration order.

        A copy: later registrations do not change it, and changing it changes nothing here. It is what the
        routes file says, whatever source the chooser currently reads.
        """
        return {g: tuple(m) for g, m in self._groups.items()}

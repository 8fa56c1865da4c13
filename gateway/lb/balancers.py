"""Choosing one instance among eligible ones: pure functions over `Instance` state, one per policy.

Each takes a non-empty sequence of candidates (already filtered for health, ejection and zone) and returns one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol


class Weighted(Protocol):
    weight: int
    #: smooth round robin's running weight
    current: int
    #: requests sent to it and not yet finished (this worker)
    inflight: int


def smooth_round_robin(candidates: Sequence[Weighted]) -> Weighted:
    """nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a, never a burst of one instance.

    Works on any subset: instances outside `candidates` keep their running weight untouched.
    """
    total = 0
    best = candidates[0]
    for c in candidates:
        c.current += c.weight
        total += c.weight
        if c.current > best.current:
            best = c
    best.current -= total
    return best


def weighted_random(candidates: Sequence[Weighted], rng: random.Random | None = None) -> Weighted:
    """One candidate with probability weight / total weight."""
    draw = (rng or random).random() * sum(c.weight for c in candidates)
    for c in candidates:
        draw -= c.weight
        if draw < 0:
            return c
    return candidates[-1]


def least_request(candidates: Sequence[Weighted], rng: random.Random | None = None) -> Weighted:
    """Power of two choices (Envoy's LEAST_REQUEST): two distinct weighted-random candidates, the one with fewer
    in-flight requests per unit of weight wins (ties: the first drawn). Two candidates are therefore always
    compared with each other, so a busy instance loses to an idle one every time.
    """
    if len(candidates) == 1:
        return candidates[0]
    first = weighted_random(candidates, rng)
    second = weighted_random([c for c in candidates if c is not first], rng)
    if (second.inflight + 1) * first.weight < (first.inflight + 1) * second.weight:
        return second
    return first


POLICIES: dict[str, Callable[[Sequence[Weighted]], Weighted]] = {
    "round_robin": smooth_round_robin,
    "least_request": least_request,
    "random": weighted_random,
}

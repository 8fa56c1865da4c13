"""Small statistics shared by the generator and the report: percentiles and spreads."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank `q`-th percentile (0 < q <= 100) of an ascending sequence; 0.0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(round(q * len(ordered) / 100, 9)))  # round: 99.9% of 1000 is 999, not 999.0000001
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True)
class Spread:
    """Median of repetitions with the smallest and largest value seen."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def ratio(self, other: Spread) -> float | None:
        """median / other's median, or None when the other is zero."""
        return self.median / other.median if other.median else None

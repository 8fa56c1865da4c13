"""Zone weights, read on every choice through a source object the traffic-shift work can replace at run time.

Like `gateway.routing.weights.WeightSource` for the Weight predicate: the configured weights by default; a live
source (the same numbers in every worker, from the supervisor's snapshot) swaps in without a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class ZoneWeightSource(Protocol):
    def zone_weights(self, pool: str) -> Mapping[str, int] | None:
        """Zone → integer weight (>= 0) for `pool`, or None to let the pool use its configured `zones:`.

        Called on every choice of an instance of a pool with zones: must be cheap and must not block.
        A zone missing from the answer gets weight 0.
        """
        ...


class ConfiguredZoneWeights:
    """The default source: every pool uses its `zones:` from routes.yaml."""

    def zone_weights(self, pool: str) -> Mapping[str, int] | None:
        return None

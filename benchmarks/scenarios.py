"""What is measured: one line per scenario.

A gateway scenario is a routes file (`routes` routes, the benchmarked one last, with `filters`) and the gateway
as production runs it (access log on, metrics on, `--workers 1` where the flag exists). A filter that does not
exist yet makes the gateway refuse its file, and that scenario is skipped with the reason; so the Retry,
CircuitBreaker and RequestId variants below can be uncommented as the filters land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from benchmarks.nginx import LARGE_SUFFIX
from benchmarks.routes import BENCH_PREFIX

Kind = Literal["direct", "nginx", "gateway"]
Body = Literal["small", "large"]

CHAIN = ("StripPrefix=1", "AddRequestHeader=X-Bench, sluicegate")


@dataclass(frozen=True)
class Scenario:
    """One target of the side-by-side comparison.

    `kind`: direct to the upstream, through the nginx reference proxy, or through a gateway started for it.
    `body`: which upstream body the request asks for (small: 64 bytes; large: 64 KiB).
    `quick`: part of `--quick`.
    """

    name: str
    kind: Kind
    filters: tuple[str, ...] = ()
    routes: int = 1
    body: Body = "small"
    quick: bool = True

    @property
    def path(self) -> str:
        return f"{BENCH_PREFIX}/hello" + (LARGE_SUFFIX if self.body == "large" else "")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("direct", "direct"),
    Scenario("nginx", "nginx"),
    Scenario("gateway", "gateway"),
    Scenario("gateway-chain", "gateway", filters=CHAIN),
    # The resilience chain on the happy path (every request succeeds): what Retry and CircuitBreaker cost per request.
    Scenario("gateway-resilient", "gateway", filters=(*CHAIN, "Retry=3", "CircuitBreaker=bench"), quick=False),
    Scenario("gateway-100-routes", "gateway", routes=100),
    Scenario("gateway-1000-routes", "gateway", routes=1000),
    Scenario("direct-64k", "direct", body="large", quick=False),
    Scenario("nginx-64k", "nginx", body="large", quick=False),
    Scenario("gateway-64k", "gateway", body="large", quick=False),
)


def select(names: list[str] | None, quick: bool) -> list[Scenario]:
    """The scenarios to run: those named (in table order), else all (or the quick ones)."""
    if names:
        unknown = set(names) - {s.name for s in SCENARIOS}
        if unknown:
            raise SystemExit(f"benchmarks: unknown scenario(s) {', '.join(sorted(unknown))}")
        return [s for s in SCENARIOS if s.name in names]
    return [s for s in SCENARIOS if s.quick or not quick]


def reference(scenarios: list[Scenario], of: Scenario, kind: Kind) -> Scenario | None:
    """The direct or nginx scenario with the same body as `of`, to compute ratios against."""
    return next((s for s in scenarios if s.kind == kind and s.body == of.body), None)

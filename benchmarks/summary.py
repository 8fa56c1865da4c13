"""From samples to figures: per target and mode, the median and range over repetitions, and the ratios."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.measure import Sample
from benchmarks.scenarios import Scenario, reference
from benchmarks.squeeze import Squeeze
from benchmarks.stats import Spread
from benchmarks.tools import GatewayFlags, Pinning

MIB = 2**20


@dataclass(frozen=True)
class ModeSummary:
    """One target in one mode over its repetitions. Latencies and CPU in µs; RSS is the largest seen."""

    runs: int
    requests: int
    errors: int
    rps: Spread
    p50_us: Spread
    p99_us: Spread
    p999_us: Spread
    proxy_cpu_us: Spread | None
    upstream_cpu_us: Spread
    rss_mib: float | None
    log_bytes_per_request: float | None
    lag_p99_us: Spread | None


def _spread(samples: list[Sample], get: Callable[[Sample], float | None]) -> Spread | None:
    values = [v for v in map(get, samples) if v is not None]
    return Spread.of(values) if values else None


def summarise(samples: list[Sample]) -> ModeSummary:
    """The samples of one target in one mode (at least one)."""

    def need(get: Callable[[Sample], float | None]) -> Spread:
        spread = _spread(samples, get)
        assert spread is not None
        return spread

    rss = [s.rss_bytes for s in samples if s.rss_bytes is not None]
    logs = [s.log_bytes_per_request for s in samples if s.log_bytes_per_request is not None]
    return ModeSummary(
        runs=len(samples),
        requests=sum(s.load.requests for s in samples),
        errors=sum(s.load.errors for s in samples),
        rps=need(lambda s: s.load.rps),
        p50_us=need(lambda s: s.load.p50_us),
        p99_us=need(lambda s: s.load.p99_us),
        p999_us=need(lambda s: s.load.p999_us),
        proxy_cpu_us=_spread(samples, lambda s: s.proxy_cpu_us),
        upstream_cpu_us=need(lambda s: s.upstream_cpu_us),
        rss_mib=max(rss) / MIB if rss else None,
        log_bytes_per_request=sorted(logs)[len(logs) // 2] if logs else None,
        lag_p99_us=_spread(samples, lambda s: s.load.lag_p99_us),
    )


@dataclass
class Results:
    """Everything a run produced, before it is written out."""

    machine: dict[str, object]
    settings: dict[str, object]
    pinning: Pinning
    flags: GatewayFlags
    scenarios: list[Scenario]
    samples: list[Sample] = field(default_factory=list)
    fixed_rate: float | None = None
    squeezes: list[Squeeze] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    metrics_live: dict[str, bool | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self, target: str, mode: str) -> ModeSummary | None:
        chosen = [s for s in self.samples if s.target == target and s.mode == mode]
        return summarise(chosen) if chosen else None

    def ratio(self, scenario: Scenario, mode: str, kind: str, what: str) -> float | None:
        """`what` ('rps' or 'cpu') of `scenario` over the same figure of the direct/nginx scenario of its body."""
        ref = reference(self.scenarios, scenario, "direct" if kind == "direct" else "nginx")
        mine, theirs = self.summary(scenario.name, mode), self.summary(ref.name, mode) if ref else None
        if mine is None or theirs is None:
            return None
        if what == "rps":
            return mine.rps.ratio(theirs.rps)
        if mine.proxy_cpu_us is None or theirs.proxy_cpu_us is None:
            return None
        return mine.proxy_cpu_us.ratio(theirs.proxy_cpu_us)

"""Squeeze: step the offered rate up (open loop) until p99, the error rate or the achieved rate gives way.

The knee is the highest offered rate whose step passed. A step fails when p99 exceeds the limit, errors exceed
the limit, or the target completed less than 95% of what was offered in the window (it fell behind); a failing
step is run once more before it counts, because one run on a shared machine can be unlucky. When the
generator itself lags (its p99 timer slack above GENERATOR_LAG_US) the squeeze stops: past that point the
generator, not the target, is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.loadgen import LoadResult
from benchmarks.measure import Sample, measure_quietly
from benchmarks.procs import Service
from benchmarks.stack import Target

GENERATOR_LAG_US = 5000.0
MIN_ACHIEVED = 0.95


@dataclass(frozen=True)
class Limits:
    """Where a step fails: p99 in µs, errors as a fraction of requests sent."""

    p99_us: float
    error_rate: float


@dataclass(frozen=True)
class Squeeze:
    """The steps of one target's squeeze (each a Sample and its verdict) and the knee (None: first step failed)."""

    target: str
    steps: list[tuple[Sample, str]]
    knee: float | None
    stopped_by: str


def verdict(result: LoadResult, limits: Limits) -> str:
    """'ok', or why the step failed."""
    offered = result.offered or 0.0
    sent = max(offered * result.duration_s, 1.0)
    if result.lag_p99_us is not None and result.lag_p99_us > GENERATOR_LAG_US:
        return f"generator-limited (lag p99 {result.lag_p99_us / 1000:.1f} ms)"
    if result.errors / sent > limits.error_rate:
        return f"errors {100 * result.errors / sent:.1f}%"
    if result.p99_us > limits.p99_us:
        return f"p99 {result.p99_us / 1000:.1f} ms"
    if result.rps < MIN_ACHIEVED * offered:
        return f"achieved {result.rps:.0f}/s"
    return "ok"


def squeeze(
    target: Target,
    upstream: Service,
    rates: list[float],
    limits: Limits,
    load_at: Callable[[float], Callable[[Target], LoadResult]],
    report: Callable[[Sample], None],
    repeats: int = 0,
) -> Squeeze:
    """Run `rates` in order against `target` until a step fails; `load_at(rate)` makes the load for a rate."""
    steps: list[tuple[Sample, str]] = []
    knee: float | None = None
    for rate in rates:
        outcome = _step(target, upstream, rate, limits, load_at, report, steps, repeats)
        if outcome != "ok":
            return Squeeze(target.scenario.name, steps, knee, outcome)
        knee = rate
    return Squeeze(target.scenario.name, steps, knee, "highest step passed")


def _step(
    target: Target,
    upstream: Service,
    rate: float,
    limits: Limits,
    load_at: Callable[[float], Callable[[Target], LoadResult]],
    report: Callable[[Sample], None],
    steps: list[tuple[Sample, str]],
    repeats: int,
) -> str:
    """One rate; a failing run is repeated once, so one noisy run does not end the squeeze. Appends to `steps`."""
    outcome = "ok"
    for attempt in range(2):
        sample = measure_quietly(target, upstream, "squeeze", len(steps), load_at(rate), repeats)
        report(sample)
        outcome = verdict(sample.load, limits)
        final = outcome == "ok" or attempt == 1
        steps.append((sample, outcome if final else f"{outcome}, repeated"))
        if final:
            break
    return outcome


def step_rates(capacity: float, start: float, step: float, count: int) -> list[float]:
    """Offered rates from start*capacity in steps of step*capacity, rounded to 50 requests/s."""
    return [max(50.0, round(capacity * (start + i * step) / 50) * 50) for i in range(count)]

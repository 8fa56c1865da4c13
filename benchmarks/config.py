"""The plan of a run: what `--quick`, the full default and the options add up to."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scenarios import SCENARIOS, Scenario, select
from benchmarks.squeeze import Limits

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """Durations in seconds. `rate` None: the fixed-rate phase offers `rate_fraction` of the bare gateway's
    closed-loop req/s (median), the same rate to every target, so their latencies compare at equal load.
    Squeeze: `squeeze_steps` steps of `squeeze_step` seconds, offering (first + i * increment) times the target's
    closed-loop req/s, with (first, increment) = `squeeze_rates`. `repeats`: how often a run disturbed by other
    processes is repeated (benchmarks.measure)."""

    quick: bool
    scenarios: list[Scenario]
    reps: int
    duration: float
    fixed_duration: float
    warmup: float
    connections: int
    rate: float | None
    rate_fraction: float
    squeeze: bool
    squeeze_targets: list[str]
    squeeze_step: float
    squeeze_steps: int
    squeeze_rates: tuple[float, float]
    repeats: int
    limits: Limits
    results: Path
    name: str

    def settings(self) -> dict[str, object]:
        """The plan as stored in the JSON results."""
        return {
            "quick": self.quick,
            "repetitions": self.reps,
            "closed_loop_seconds": self.duration,
            "fixed_rate_seconds": self.fixed_duration,
            "warmup_seconds": self.warmup,
            "connections": self.connections,
            "fixed_rate": self.rate,
            "fixed_rate_fraction": self.rate_fraction,
            "squeeze": self.squeeze,
            "squeeze_targets": self.squeeze_targets,
            "squeeze_step_seconds": self.squeeze_step,
            "p99_limit_ms": self.limits.p99_us / 1000,
            "error_limit": self.limits.error_rate,
            "repeats_when_disturbed": self.repeats,
        }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Direct vs nginx vs the gateway on loopback: req/s, latency, CPU µs per request, RSS.",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run that finishes within 60 s")
    p.add_argument("--squeeze", action="store_true", help="also step the offered rate up to find the knee")
    p.add_argument("--only", nargs="+", metavar="SCENARIO", help=f"scenarios: {' '.join(s.name for s in SCENARIOS)}")
    p.add_argument("--reps", type=int, help="repetitions per target and mode (default 5; quick 1)")
    p.add_argument("--duration", type=float, help="closed-loop seconds per run (default 8; quick 2)")
    p.add_argument("--fixed-duration", type=float, help="fixed-rate seconds per run (default 8; quick 2)")
    p.add_argument("--connections", type=int, default=64, help="connections of either generator (default 64)")
    p.add_argument("--rate", type=float, help="fixed-rate offered req/s (default: half the bare gateway's max)")
    p.add_argument("--squeeze-targets", nargs="+", default=["gateway"], metavar="SCENARIO")
    p.add_argument("--p99-limit-ms", type=float, default=10.0, help="squeeze: p99 that ends it (default 10)")
    p.add_argument("--error-limit", type=float, default=0.01, help="squeeze: error fraction that ends it")
    p.add_argument("--name", default="latest", help="results file stem in benchmarks/results (default latest)")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    return p


def plan(argv: list[str] | None = None) -> Plan:
    """Parse the command line into a Plan."""
    args = parser().parse_args(argv)
    quick = bool(args.quick)
    return Plan(
        quick=quick,
        scenarios=select(args.only, quick),
        reps=args.reps or (1 if quick else 5),
        duration=args.duration or (2.0 if quick else 8.0),
        fixed_duration=args.fixed_duration or (2.0 if quick else 8.0),
        warmup=1.0,
        connections=args.connections,
        rate=args.rate,
        rate_fraction=0.5,
        squeeze=bool(args.squeeze),
        squeeze_targets=list(args.squeeze_targets),
        squeeze_step=1.0 if quick else 5.0,
        squeeze_steps=6 if quick else 14,
        squeeze_rates=(0.3, 0.15) if quick else (0.2, 0.1),
        repeats=0 if quick else 2,
        limits=Limits(p99_us=args.p99_limit_ms * 1000, error_rate=args.error_limit),
        results=args.results_dir,
        name=args.name,
    )

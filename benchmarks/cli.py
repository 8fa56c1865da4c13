"""The suite's one command: start everything, run the phases, write the results.

Phases, each alternating the targets between repetitions: warm-up (unmeasured), closed loop (wrk), fixed rate
(open loop, the same offered rate for every small-body target), then with --squeeze the rate steps for the
squeeze targets. Everything runs on 127.0.0.1 and every run is bounded in time.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.config import Plan, plan
from benchmarks.loadgen import LoadResult, fixed_rate, wrk
from benchmarks.machine import busy_fraction, describe
from benchmarks.measure import Load, Sample, alternate
from benchmarks.report import write
from benchmarks.squeeze import squeeze, step_rates
from benchmarks.stack import Stack, Target, metrics_live
from benchmarks.summary import Results
from benchmarks.tools import check_tools, gateway_flags, plan_pinning

BUSY = 0.1  # busier than this before the start (other processes), and the report says so


def _progress(sample: Sample) -> None:
    x = sample.load
    cpu = "" if sample.proxy_cpu_us is None else f"  CPU {sample.proxy_cpu_us:6.1f} µs/req"
    offered = f" of {x.offered:,.0f}" if x.offered else ""
    print(
        f"  {sample.mode:<7} #{sample.rep + 1:<2} {sample.target:<22} {x.rps:9,.0f}{offered} req/s"
        f"  p50 {x.p50_us / 1000:6.2f}  p99 {x.p99_us / 1000:7.2f}  p99.9 {x.p999_us / 1000:7.2f} ms"
        f"  errors {x.errors}{cpu}  other {100 * sample.foreign:.0f}%",
        file=sys.stderr,
        flush=True,
    )


def _fixed_rate(p: Plan, results: Results) -> float | None:
    """The offered rate of the fixed-rate phase: given, or a fraction of the bare gateway's closed-loop req/s."""
    if p.rate:
        return p.rate
    for name in ("gateway", *(s.name for s in p.scenarios if s.kind == "gateway")):
        summary = results.summary(name, "closed")
        if summary is not None:
            return max(100.0, round(summary.rps.median * p.rate_fraction / 100) * 100)
    return None


def _phases(p: Plan, stack: Stack, results: Results) -> None:
    assert stack.upstream is not None
    upstream, load_cpu, work = stack.upstream, stack.pinning.load, stack.workdir
    targets = stack.targets

    def closed(t: Target) -> LoadResult:
        return wrk(t.url, p.duration, p.connections, load_cpu, work)

    print(f"warm-up: {p.warmup:g} s per target", file=sys.stderr)
    for target in targets:
        wrk(target.url, p.warmup, p.connections, load_cpu, work)
    print(f"closed loop: {len(targets)} targets × {p.reps}", file=sys.stderr)
    results.samples += alternate(targets, upstream, "closed", p.reps, closed, _progress, p.repeats)
    small = [t for t in targets if t.scenario.body == "small"]
    rate = results.fixed_rate = _fixed_rate(p, results) if small else None
    if rate:
        print(f"fixed rate: {rate:,.0f} req/s offered, {len(small)} targets × {p.reps}", file=sys.stderr)
        fixed = _open_loop(p, rate, load_cpu)
        results.samples += alternate(small, upstream, "fixed", p.reps, fixed, _progress, p.repeats)
    if p.squeeze:
        _squeeze(p, stack, results)
    results.metrics_live = {t.scenario.name: metrics_live(t) for t in targets if t.scenario.kind == "gateway"}


def _open_loop(p: Plan, rate: float, cpus: str | None, duration: float | None = None) -> Load:
    def run(t: Target) -> LoadResult:
        return fixed_rate(t.url, rate, duration or p.fixed_duration, p.connections, cpus)

    return run


def _squeeze(p: Plan, stack: Stack, results: Results) -> None:
    assert stack.upstream is not None
    for target in (t for t in stack.targets if t.scenario.name in p.squeeze_targets):
        capacity = results.summary(target.scenario.name, "closed")
        if capacity is None:
            continue
        rates = step_rates(capacity.rps.median, *p.squeeze_rates, p.squeeze_steps)
        print(f"squeeze {target.scenario.name}: {rates[0]:,.0f} req/s and up", file=sys.stderr)
        outcome = squeeze(
            target,
            stack.upstream,
            rates,
            p.limits,
            lambda rate: _open_loop(p, rate, stack.pinning.load, p.squeeze_step),
            _progress,
            p.repeats,
        )
        results.squeezes.append(outcome)


def _prepare(p: Plan) -> Results:
    """Tools, pinning (this process moves to the load generator's CPU), how busy the machine is, the machine."""
    warnings = check_tools()
    pinning = plan_pinning(os.sched_getaffinity(0), shutil.which("taskset") is not None)
    if pinning.load is not None:
        os.sched_setaffinity(0, {int(pinning.load)})  # the orchestrator stays off the proxy's CPU
    busy = busy_fraction()
    if busy > BUSY:
        warnings.append(f"The machine was {100 * busy:.0f}% busy before the run started: figures may be noisy.")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    machine = describe() | {"busy_before_start": round(busy, 3)}
    return Results(machine, p.settings(), pinning, gateway_flags(), p.scenarios, notes=warnings)


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Stack.stop(), so nothing the suite started is left running


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit status 0 when results were written, 1 when a run failed."""
    p = plan(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background job starts with it ignored
        signal.signal(signum, _interrupted)
    started = time.monotonic()
    results = _prepare(p)
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        stack = Stack(Path(tmp), results.pinning, results.flags)
        try:
            stack.start(p.scenarios)
            results.skipped = dict(stack.skipped)
            results.scenarios = [t.scenario for t in stack.targets]
            for name, why in stack.skipped.items():
                print(f"skipped {name}: {why}", file=sys.stderr)
            _phases(p, stack, results)
        except RuntimeError as exc:
            print(f"benchmarks: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
    results.elapsed_s = time.monotonic() - started
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    paths = write(results, p.results, p.name, command)
    print(paths[1].read_text())
    print("wrote " + ", ".join(str(path) for path in paths), file=sys.stderr)
    return 0

"""One measured load run, and repetitions that alternate the targets.

Around every run: the proxy's CPU time (its whole process tree, from /proc) and the upstream's, so CPU per request
is (CPU after - CPU before) / requests completed. The sample is taken after a short settle, so work a proxy
defers past the last response (the gateway flushes its access log every 200 ms) is charged to the run.

Interference: the machine's busy CPU time over the run, less what the proxy, the upstream and the load generator
used, is CPU some other process took (`foreign`, a fraction of all CPUs). A run above FOREIGN_LIMIT is repeated,
at most `repeats` times (2 in a full run, none with --quick); the figure is kept with every sample.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.loadgen import LoadResult
from benchmarks.procs import Service, children_cpu_seconds, machine_busy_seconds, tree_cpu_seconds, tree_rss_bytes
from benchmarks.stack import Target

SETTLE = 0.3  # seconds between the end of the load and the CPU/RSS/log reading
FOREIGN_LIMIT = 0.05

Load = Callable[[Target], LoadResult]


@dataclass(frozen=True)
class Sample:
    """One run of one target. CPU figures are µs per completed request; None where there is no proxy."""

    target: str
    mode: str
    rep: int
    load: LoadResult
    proxy_cpu_us: float | None
    upstream_cpu_us: float
    rss_bytes: int | None
    log_bytes_per_request: float | None
    foreign: float


def measure(target: Target, upstream: Service, mode: str, rep: int, load: Load) -> Sample:
    """Run `load` against `target` once and charge the CPU it cost."""
    target.truncate_log()
    proxy = target.proxy
    proxy_before = tree_cpu_seconds(proxy.pid) if proxy else 0.0
    upstream_before, children_before = tree_cpu_seconds(upstream.pid), children_cpu_seconds()
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    result = load(target)
    time.sleep(SETTLE)
    if proxy is not None and not proxy.alive():
        raise RuntimeError(f"{target.scenario.name}: the proxy exited during the run: {proxy.tail()}")
    proxy_cpu = tree_cpu_seconds(proxy.pid) - proxy_before if proxy else 0.0
    upstream_cpu = tree_cpu_seconds(upstream.pid) - upstream_before
    ours = proxy_cpu + upstream_cpu + children_cpu_seconds() - children_before
    cpus = os.cpu_count() or 1
    foreign = (machine_busy_seconds() - busy_before - ours) / ((time.monotonic() - wall_before) * cpus)
    per_request = 1e6 / max(result.requests, 1)
    return Sample(
        target=target.scenario.name,
        mode=mode,
        rep=rep,
        load=result,
        proxy_cpu_us=proxy_cpu * per_request if proxy else None,
        upstream_cpu_us=upstream_cpu * per_request,
        rss_bytes=tree_rss_bytes(proxy.pid) if proxy else None,
        log_bytes_per_request=target.log_bytes() * per_request / 1e6 if target.access_log else None,
        foreign=max(0.0, foreign),
    )


def measure_quietly(target: Target, upstream: Service, mode: str, rep: int, load: Load, repeats: int) -> Sample:
    """`measure`, repeated (at most `repeats` times) while other processes took over FOREIGN_LIMIT of the CPUs."""
    sample = measure(target, upstream, mode, rep, load)
    for _ in range(repeats):
        if sample.foreign <= FOREIGN_LIMIT:
            break
        print(f"  (other processes took {100 * sample.foreign:.0f}% of the CPUs: repeating)", file=sys.stderr)
        sample = measure(target, upstream, mode, rep, load)
    return sample


def alternate(
    targets: list[Target],
    upstream: Service,
    mode: str,
    reps: int,
    load: Load,
    report: Callable[[Sample], None],
    repeats: int = 0,
) -> list[Sample]:
    """`reps` rounds over all targets; each round starts one target later, so no target always runs first."""
    samples: list[Sample] = []
    for rep in range(reps):
        shift = rep % len(targets)
        for target in targets[shift:] + targets[:shift]:
            sample = measure_quietly(target, upstream, mode, rep, load, repeats)
            report(sample)
            samples.append(sample)
    return samples

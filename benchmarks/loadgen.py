"""The two load generators, driven as pinned subprocesses, each returning a LoadResult.

Closed loop: wrk (`-t1`, a fixed number of connections, each sending its next request when the last answered);
the most a target can serve, but its latency suffers coordinated omission. Fixed rate: our open-loop generator
(`benchmarks.openloop`), whose latency is counted from when a request was due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tools import pinned

ROOT = Path(__file__).resolve().parent.parent  # so `python -m benchmarks.openloop` imports from any directory

# wrk's summary as one JSON line: percentiles in µs; socket errors and non-2xx/3xx responses both count as errors.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_s": %.6f, "errors": %d, "p50_us": %.1f, "p99_us": %.1f, "p999_us": %.1f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one load run saw. Latencies in µs. `offered`/`lag_p99_us` are set by the fixed-rate generator only."""

    requests: int
    duration_s: float
    errors: int
    p50_us: float
    p99_us: float
    p999_us: float
    offered: float | None = None
    lag_p99_us: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def _bench_line(stdout: str, what: str) -> dict[str, float]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("BENCH "):
            parsed: dict[str, float] = json.loads(line[6:])
            return parsed
    raise RuntimeError(f"{what} printed no summary:\n{stdout[-2000:]}")


def wrk(url: str, duration: float, connections: int, cpus: str | None, workdir: Path) -> LoadResult:
    """Closed-loop load on `url` for `duration` seconds (whole seconds, at least 1) with `connections`."""
    script = workdir / "bench.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    seconds = max(1, round(duration))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    done = subprocess.run(pinned(cmd, cpus), capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    out = _bench_line(done.stdout, "wrk")
    return LoadResult(
        int(out["requests"]), out["duration_s"], int(out["errors"]), out["p50_us"], out["p99_us"], out["p999_us"]
    )


def fixed_rate(url: str, rate: float, duration: float, connections: int, cpus: str | None) -> LoadResult:
    """Open-loop load on `url` at `rate` requests/s for `duration` seconds (see benchmarks.openloop)."""
    cmd = [sys.executable, "-m", "benchmarks.openloop", url, "--rate", f"{rate:g}", "--duration", f"{duration:g}"]
    cmd += ["--connections", str(connections)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        pinned(cmd, cpus), capture_output=True, text=True, timeout=duration + 60, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"open-loop generator failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    out = _bench_line(done.stdout, "the open-loop generator")
    return LoadResult(
        int(out["completed"]),
        out["duration_s"],
        int(out["errors"]),
        out["p50_us"],
        out["p99_us"],
        out["p999_us"],
        offered=rate,
        lag_p99_us=out["lag_p99_us"],
    )

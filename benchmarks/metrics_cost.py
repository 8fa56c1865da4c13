"""Cost of recording one request's metrics: our per-worker numbers vs prometheus_client's multiprocess mode.

    python benchmarks/metrics_cost.py

Runs each in a fresh interpreter (multiprocess mode is chosen at import time) and prints µs per request for one
counter increment plus one histogram observation with four labels — what a request records.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

OURS = """
import timeit
from gateway.metrics import WorkerMetrics
m = WorkerMetrics()
n = 200_000
t = min(timeit.repeat(lambda: m.request("orders", "GET", 200, 0.0123), number=n, repeat=5))
print(f"{t / n * 1e6:.3f}")
"""

PROMETHEUS = """
import os, timeit
from prometheus_client import Counter, Histogram
labels = ["route", "method", "status", "outcome"]
c = Counter("gateway_requests", "r", labels).labels("orders", "GET", "2xx", "SUCCESSFUL")
h = Histogram("gateway_request_duration_seconds", "d", labels).labels("orders", "GET", "2xx", "SUCCESSFUL")
def record() -> None:
    c.inc()
    h.observe(0.0123)
n = 50_000
t = min(timeit.repeat(record, number=n, repeat=5))
print(f"{t / n * 1e6:.3f}")
"""


def measure(code: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=300
    ).stdout.strip()


def main() -> None:
    import os

    print(f"ours (per-worker numbers):           {measure(OURS)} µs per request")
    print(f"prometheus_client, single process:   {measure(PROMETHEUS)} µs per request")
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        print(f"prometheus_client, multiprocess:     {measure(PROMETHEUS, env)} µs per request")


if __name__ == "__main__":
    main()

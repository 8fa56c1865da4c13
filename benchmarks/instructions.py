"""Instructions per proxied request, counted by valgrind's callgrind: a figure other processes cannot move.

CPU time per request (the suite's main figure) moves with the machine: another process, a noisy neighbour of the
VM, the frequency of the moment. Instructions do not, so this is the figure for comparing two versions of the
code on a busy machine, one change at a time. It is not a replacement for the suite: instructions do not show
syscall costs, cache misses or how well a loop batches.

    python -m benchmarks.instructions                          # this checkout
    python -m benchmarks.instructions --source /tmp/before     # another checkout (git worktree add /tmp/before REV)

A gateway runs in one process (no supervisor) under `valgrind --tool=callgrind` with instrumentation off; after a
warm-up under load, instrumentation is switched on for a window of requests from wrk, then off again, and the
instructions of the window are divided by the requests completed in it. Access log (to a file) and metrics are on,
as in production. Needs valgrind, nginx and wrk (Debian packages). Loopback only; about 90 s per run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.nginx import start_nginx, upstream_conf
from benchmarks.procs import free_port
from benchmarks.routes import routes_yaml
from benchmarks.scenarios import CHAIN

#: The program valgrind runs: a gateway on PORT, a window of WINDOW seconds once the caller says go.
_CHILD = """
import asyncio, os, subprocess, sys, gc
import uvloop
from pathlib import Path
from gateway.app import Gateway
from gateway.metrics import METRICS
from gateway.observability import ACCESS_LOG

def served():
    return sum(h.count for h in METRICS.requests.values())

async def main(routes, port, window, log):
    gateway = Gateway()
    gateway.load_text(Path(routes).read_text(), routes)
    ACCESS_LOG.enabled = True
    ACCESS_LOG.fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    await gateway.start("127.0.0.1", port)
    gc.collect(); gc.freeze(); gc.set_threshold(20_000, 10, 10)  # as gateway/worker.py
    print("ready", flush=True)
    await asyncio.sleep(float(os.environ.get("WARMUP", "5")))
    control = ["callgrind_control", "-i"]
    subprocess.Popen([*control, "on", str(os.getpid())], stdout=subprocess.DEVNULL)
    await asyncio.sleep(1)  # valgrind polls for the command while this process runs; Popen, not run(): no deadlock
    first = served()
    await asyncio.sleep(window)
    last = served()
    subprocess.Popen([*control, "off", str(os.getpid())], stdout=subprocess.DEVNULL)
    await asyncio.sleep(1)
    print(f"window {last - first}", flush=True)
    await gateway.stop()

uvloop.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
"""


def measure(source: Path, filters: tuple[str, ...], window: float, connections: int) -> tuple[int, int]:
    """(instructions, requests) of one window for the checkout at `source`."""
    with tempfile.TemporaryDirectory(prefix="sluicegate-ir-") as tmp:
        root = Path(tmp)
        up_port, gw_port = free_port(), free_port()
        upstream = start_nginx("upstream", root / "upstream", upstream_conf(root / "upstream", up_port), up_port, None)
        try:
            routes = root / "routes.yaml"
            routes.write_text(routes_yaml(f"http://127.0.0.1:{up_port}", filters, 1))
            (root / "child.py").write_text(_CHILD)
            out = root / "callgrind.out"
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
            cmd += [sys.executable, str(root / "child.py"), str(routes), str(gw_port), str(window), str(root / "log")]
            env = {**os.environ, "PYTHONPATH": str(source)}
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the gateway under valgrind did not start")
            load = ["wrk", "-t1", f"-c{connections}", f"-d{int(window + 30)}s", f"http://127.0.0.1:{gw_port}/bench/x"]
            wrk = subprocess.Popen(load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                rest, _ = child.communicate(timeout=window + 600)
            finally:
                wrk.kill()
            requests = int(rest.split("window ")[1].split()[0])
            return _instructions(out), requests
        finally:
            upstream.stop()


def _instructions(out: Path) -> int:
    """The total of the events line(s) callgrind wrote ("summary:"/"totals:")."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        for line in path.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="checkout to measure (default: this one)")
    parser.add_argument("--chain", action="store_true", help="the typical chain (gateway-chain), not the bare route")
    parser.add_argument("--window", type=float, default=20.0, help="seconds counted (default 20)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    instructions, requests = measure(args.source.resolve(), CHAIN if args.chain else (), args.window, args.connections)
    route = "typical chain" if args.chain else "bare route"
    print(f"{args.source}: {route}: {requests} requests, {instructions:,} instructions")
    print(f"instructions per request: {instructions // max(requests, 1):,}  ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

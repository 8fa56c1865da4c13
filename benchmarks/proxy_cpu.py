"""Proxy cost, measured: wrk against the upstream directly and through the gateway, side by side.

Reports requests/s and the gateway process's CPU time per proxied request (user + system, from /proc), which
stays meaningful on a small machine where wrk, the upstream and the gateway share the cores.
Traffic goes to 127.0.0.1 only; each run is bounded by --duration.

    python benchmarks/proxy_cpu.py [--duration 10] [--connections 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wrk(url: str, duration: int, connections: int) -> tuple[int, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return requests, rps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    up_port, gw_port = free_port(), free_port()
    routes = Path(tempfile.mkdtemp()) / "routes.yaml"
    routes.write_text(f"routes: [{{id: bench, uri: 'http://127.0.0.1:{up_port}', predicates: ['Path=/**']}}]\n")
    upstream = subprocess.Popen([sys.executable, str(HERE / "hello_upstream.py"), str(up_port)], stdout=subprocess.PIPE)
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(routes),
            "--listen",
            f"127.0.0.1:{gw_port}",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(up_port)
        wait_port(gw_port)
        wrk(f"http://127.0.0.1:{gw_port}/", 2, args.connections)  # warm-up
        direct, proxied, cpu = [], [], []
        for _ in range(args.runs):  # alternate, so drift in the machine hits both equally
            direct.append(wrk(f"http://127.0.0.1:{up_port}/", args.duration, args.connections)[1])
            before = cpu_seconds(gateway.pid)
            count, rps = wrk(f"http://127.0.0.1:{gw_port}/", args.duration, args.connections)
            cpu.append((cpu_seconds(gateway.pid) - before) / count * 1e6)
            proxied.append(rps)
        d, p, c = statistics.median(direct), statistics.median(proxied), statistics.median(cpu)
        print(f"{'target':<10} {'req/s':>10} {'ratio':>7} {'gateway CPU µs/req':>20}")
        print(f"{'direct':<10} {d:>10.0f} {1.0:>7.2f} {'-':>20}")
        print(f"{'gateway':<10} {p:>10.0f} {p / d:>7.2f} {c:>20.1f}")
        print(
            f"(medians of {args.runs} alternated runs, {args.duration}s each, wrk -t1 -c{args.connections}, "
            f"{os.cpu_count()} CPUs)"
        )
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()

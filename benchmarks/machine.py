"""A description of the machine and software a run measured, stored with its results."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from benchmarks.procs import machine_busy_seconds
from benchmarks.tools import versions

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    """Read-only git queries (commit, dirty state); empty outside a checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def busy_fraction(seconds: float = 1.0) -> float:
    """How busy the machine is before the suite starts anything (0.0-1.0 of all CPUs), over `seconds`."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / (seconds * (os.cpu_count() or 1))


def describe() -> dict[str, object]:
    """CPU, cores, memory, kernel, Python, the gateway's event-loop libraries, nginx/wrk, and the checkout."""
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": sorted(os.sched_getaffinity(0)),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "uvloop": _package("uvloop"),
        "httptools": _package("httptools"),
        "sluicegate": _package("sluicegate"),
        **versions(),
        "load_average_at_start": os.getloadavg()[0],
        "commit": (_git("rev-parse", "--short", "HEAD") or "unknown")
        + (" (with uncommitted changes)" if dirty else ""),
    }

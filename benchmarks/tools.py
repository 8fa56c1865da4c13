"""The external tools the suite drives, their versions, and where each process is pinned.

Pinning on the 2-core development machine (`taskset -c`): CPU 0 carries the load generator, the nginx upstream and
this orchestrator; CPU 1 belongs to the proxy under test alone (the gateway and all its processes, or the nginx
proxy). The proxy's CPU per request is then measured without sharing its core; the price is that "direct" and
fast proxies (nginx) are capped by CPU 0, which runs both ends of the conversation, so their req/s is a floor.
With three or more CPUs the upstream gets its own core; with one CPU nothing is pinned.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

REQUIRED = {"nginx": "nginx-light", "wrk": "wrk"}
OPTIONAL = {"taskset": "util-linux"}
INSTALL = "apt-get install -y nginx-light wrk"


class MissingTools(SystemExit):
    """Raised (as an exit) when a required tool is not on PATH, with the command that installs it."""


def check_tools() -> list[str]:
    """Exit with install instructions if a required tool is missing; return warnings for optional ones."""
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in REQUIRED.items() if shutil.which(tool) is None]
    if missing:
        raise MissingTools(f"benchmarks: missing {', '.join(missing)}.\nInstall with: {INSTALL}")
    return [
        f"{tool} not found (Debian package {pkg}): processes will not be pinned to CPUs"
        for tool, pkg in OPTIONAL.items()
        if shutil.which(tool) is None
    ]


def _first_line(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not found"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str]:
    """Versions of the external tools, as they print them."""
    return {
        "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": re.sub(r"\s*Copyright.*", "", _first_line(["wrk", "-v"])),
    }


@dataclass(frozen=True)
class GatewayFlags:
    """Options of `python -m gateway run` that exist in this checkout (they are being added)."""

    workers: bool
    admin_listen: bool


def gateway_flags() -> GatewayFlags:
    """Read `python -m gateway run --help` for --workers and --admin-listen."""
    cmd = [sys.executable, "-m", "gateway", "run", "--help"]
    # From "/", as the gateways run from their own directories: the `gateway` found is the one on sys.path.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True, cwd="/")
    return GatewayFlags(workers="--workers" in done.stdout, admin_listen="--admin-listen" in done.stdout)


@dataclass(frozen=True)
class Pinning:
    """`taskset -c` CPU lists per role; None means unpinned."""

    load: str | None
    upstream: str | None
    proxy: str | None

    def describe(self) -> str:
        if self.proxy is None:
            return "unpinned"
        return f"load generator CPU {self.load}, upstream CPU {self.upstream}, proxy under test CPU {self.proxy}"


def plan_pinning(cpus: set[int], have_taskset: bool) -> Pinning:
    """Proxy alone on one CPU; load generator and upstream share another (or get their own on 3+ CPUs)."""
    ordered = sorted(cpus)
    if not have_taskset or len(ordered) < 2:
        return Pinning(None, None, None)
    if len(ordered) == 2:
        return Pinning(str(ordered[0]), str(ordered[0]), str(ordered[1]))
    return Pinning(str(ordered[0]), str(ordered[1]), str(ordered[2]))


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """`cmd` under `taskset -c cpus`, or `cmd` unchanged when unpinned."""
    return cmd if cpus is None else ["taskset", "-c", cpus, *cmd]

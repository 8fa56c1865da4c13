"""The processes under test, started once per suite run and kept up while the targets alternate.

The gateway is started exactly as the CLI runs it in production — `python -m gateway run --config FILE --listen
127.0.0.1:PORT --log-level INFO` (+ `--workers 1`, `--admin-listen` where they exist) — with its stdout, the JSON
access log, appended to a file in the run's temporary directory: a real write per flush, as a log collector
reading a file or pipe would see, but never a terminal. The nginx proxy writes its access log to a file too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.nginx import proxy_conf, start_nginx, upstream_conf
from benchmarks.procs import Service, free_port, spawn, wait_port
from benchmarks.routes import routes_yaml
from benchmarks.scenarios import Scenario
from benchmarks.tools import GatewayFlags, Pinning, pinned


@dataclass
class Target:
    """A scenario that is up: where to send requests and which process tree to charge (None: direct)."""

    scenario: Scenario
    url: str
    proxy: Service | None = None
    access_log: Path | None = None
    admin_port: int | None = None

    def log_bytes(self) -> int:
        return self.access_log.stat().st_size if self.access_log and self.access_log.exists() else 0

    def truncate_log(self) -> None:
        if self.access_log is not None and self.access_log.exists():
            os.truncate(self.access_log, 0)  # both proxies append (O_APPEND), so they continue at the new end


@dataclass
class Stack:
    """The upstream, the nginx proxy (if any scenario needs it) and one gateway per gateway scenario."""

    workdir: Path
    pinning: Pinning
    flags: GatewayFlags
    upstream: Service | None = None
    upstream_port: int = 0
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)

    def start(self, scenarios: list[Scenario]) -> None:
        """Start everything; a gateway scenario that does not come up (say, a filter that does not exist yet makes
        it refuse its routes file) is skipped with the reason."""
        self.upstream_port = free_port()
        root = self._dir("upstream")
        conf = upstream_conf(root, self.upstream_port)
        self.upstream = self._keep(start_nginx("upstream", root, conf, self.upstream_port, self.pinning.upstream))
        base = f"http://127.0.0.1:{self.upstream_port}"
        up: dict[str, Target] = {}
        proxy: tuple[Service, int, Path] | None = None
        gateways: list[tuple[Target, int]] = []
        for scenario in scenarios:
            if scenario.kind == "direct":
                up[scenario.name] = Target(scenario, base + scenario.path)
            elif scenario.kind == "nginx":
                proxy = proxy or self._nginx_proxy()
                up[scenario.name] = Target(scenario, f"http://127.0.0.1:{proxy[1]}{scenario.path}", proxy[0], proxy[2])
            else:
                gateways.append(self._gateway(scenario, base))
        for target, port in gateways:  # the gateways start concurrently; wait for them all here
            if self._await_gateway(target, port):
                up[target.scenario.name] = target
        self.targets = [up[s.name] for s in scenarios if s.name in up]

    def _dir(self, name: str) -> Path:
        root = self.workdir / name
        root.mkdir()
        return root

    def _keep(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def _nginx_proxy(self) -> tuple[Service, int, Path]:
        root = self._dir("nginx-proxy")
        port, log = free_port(), root / "access.log"
        conf = proxy_conf(root, port, self.upstream_port, log)
        return self._keep(start_nginx("nginx-proxy", root, conf, port, self.pinning.proxy)), port, log

    def _gateway(self, scenario: Scenario, upstream: str) -> tuple[Target, int]:
        root = self._dir(scenario.name)
        config = root / "routes.yaml"
        config.write_text(routes_yaml(upstream, scenario.filters, scenario.routes))
        port, admin = free_port(), free_port() if self.flags.admin_listen else None
        cmd = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        cmd += ["--log-level", "INFO"] + (["--workers", "1"] if self.flags.workers else [])
        cmd += ["--admin-listen", f"127.0.0.1:{admin}"] if admin else []
        log = root / "access.log"
        service = self._keep(spawn("gateway", pinned(cmd, self.pinning.proxy), root, stdout=log))
        return Target(scenario, f"http://127.0.0.1:{port}{scenario.path}", service, log, admin), port

    def _await_gateway(self, target: Target, port: int) -> bool:
        assert target.proxy is not None
        try:
            wait_port(port, target.proxy.proc, timeout=60)
        except RuntimeError as exc:
            self.skipped[target.scenario.name] = f"did not start: {exc}: {target.proxy.tail()}"
            target.proxy.stop()
            return False
        return True

    def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()


def metrics_live(target: Target) -> bool | None:
    """Whether the gateway's admin listener serves Prometheus text with gateway_ series; None without one."""
    if target.admin_port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{target.admin_port}/metrics", timeout=5) as resp:
            return resp.status == 200 and b"gateway_" in resp.read()
    except OSError:
        return False

"""The `sluicegate run` process: owns the listening socket, the workers, reloads, drain and the admin listener.

Workers are fresh interpreters (`python -m gateway.worker`) that inherit the data socket and a control channel.
The supervisor validates a routes file once and hands every worker the same versioned snapshot; a worker that
dies is restarted with the current snapshot. On SIGTERM readiness turns false at once, and after the drain delay
every worker stops accepting and finishes what it has read (bounded by the drain timeout), then everything exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.admin import admin_app
from gateway.config.definitions import GatewayConfig
from gateway.config.redact import redacted_routes
from gateway.config.source import load_yaml
from gateway.control import Channel, Message
from gateway.errors import ConfigError
from gateway.exchange import Exchange, Response
from gateway.metrics import render
from gateway.registry import Registry, load_registry
from gateway.routing.compiler import compile_config
from gateway.settings import Listen, Settings

log = logging.getLogger("sluicegate.supervisor")
START_TIMEOUT = 30.0
RESTART_BACKOFF = 1.0


@dataclass(frozen=True)
class Snapshot:
    """One validated version of the routes file, as every worker receives it."""

    version: int
    text: str
    source: str
    config: GatewayConfig

    def message(self) -> Message:
        return {"version": self.version, "text": self.text, "source": self.source}


@dataclass
class WorkerHandle:
    index: int
    process: asyncio.subprocess.Process
    channel: Channel
    ready: bool = False
    version: int = 0
    restarts: int = 0


async def _no_terminal(exchange: Exchange) -> Response:  # compile needs a terminal; the supervisor never serves
    return Response(500)


def compile_snapshot(path: Path, registry: Registry, settings: Settings, version: int) -> Snapshot:
    """Read and validate `path`. Raises ConfigError naming the file, YAML path and reason of every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        from gateway.errors import ConfigIssue

        raise ConfigError([ConfigIssue(str(path), "", f"cannot read: {exc.strerror or exc}")]) from exc
    doc, issues = load_yaml(text, str(path))
    if issues:
        raise ConfigError(issues)
    config, _ = compile_config(doc, registry, settings, _no_terminal, version)
    for note in config.notes:  # here, once per load, not in every worker
        log.info("%s: %s", path, note)
    for warning in config.warnings:
        log.warning("%s", warning)
    return Snapshot(version, text, str(path), config)


@dataclass
class Supervisor:
    settings: Settings
    path: Path
    snapshot: Snapshot
    log_level: str = "INFO"
    watch: bool = False
    registry: Registry = field(default_factory=load_registry)
    workers: list[WorkerHandle] = field(default_factory=list)
    draining: bool = False
    reloads: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def run(self, demo_listen: str | None = None) -> int:
        self.stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.sock = _listen(self.settings.listen)
        log.info("data port listening on %s", self.settings.listen)
        demo = await _start_demo(demo_listen)
        self.workers = [await self._spawn(i) for i in range(self.settings.workers)]
        admin = await self._start_admin()
        self._install_signals()
        watcher = asyncio.get_running_loop().create_task(self._watch()) if self.watch else None
        await self.stopping.wait()
        await self._drain()
        if watcher is not None:
            watcher.cancel()
        await admin.cleanup()
        if demo is not None:
            await demo.cleanup()
        return 0

    def ready(self) -> bool:
        """Readiness: every worker serving, and no drain started."""
        return not self.draining and bool(self.workers) and all(w.ready for w in self.workers)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.begin_drain)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))

    def begin_drain(self) -> None:
        if not self.draining:
            log.info("drain requested: readiness is now false")
            self.draining = True  # readiness turns false at once; serving goes on through the drain delay
            self.stopping.set()

    async def _drain(self) -> None:
        await asyncio.sleep(self.settings.drain.delay)
        timeout = self.settings.drain.timeout
        log.info("draining workers (timeout %gs)", timeout)
        self.sock.close()  # the supervisor's copy; workers stop accepting when told
        await asyncio.gather(*(self._drain_worker(w, timeout) for w in self.workers))
        log.info("drained; exiting")

    async def _drain_worker(self, worker: WorkerHandle, timeout: float) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await worker.channel.request({"type": "drain", "timeout": timeout}, timeout + 5)
        try:
            await asyncio.wait_for(worker.process.wait(), 5)
        except TimeoutError:
            log.error("worker %d did not exit after drain; killing it", worker.index)
            worker.process.kill()
            await worker.process.wait()
        worker.channel.close()

    # -- workers ----------------------------------------------------------------------------------------------
    async def _spawn(self, index: int, restarts: int = 0) -> WorkerHandle:
        parent, child = socket.socketpair()
        fds = (self.sock.fileno(), child.fileno())
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.worker",
            "--listen-fd",
            str(fds[0]),
            "--control-fd",
            str(fds[1]),
            "--log-level",
            self.log_level,
            pass_fds=fds,
        )
        child.close()
        reader, writer = await asyncio.open_connection(sock=parent)
        worker = WorkerHandle(index, process, Channel(reader, writer), restarts=restarts)
        start = {"type": "start", "settings": self.settings.model_dump(mode="json"), "routes": self.snapshot.message()}
        try:
            reply = await worker.channel.request(start, START_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            raise RuntimeError(f"worker {index} did not start: {exc}") from exc
        worker.ready, worker.version = reply.get("type") == "ready", int(reply.get("version", 0))
        log.info("worker %d (pid %d) serving routes version %d", index, process.pid, worker.version)
        asyncio.get_running_loop().create_task(self._supervise(worker))
        return worker

    async def _supervise(self, worker: WorkerHandle) -> None:
        """Restart a worker that died, unless we are draining."""
        code = await worker.process.wait()
        worker.ready = False
        if self.draining:
            return
        log.error("worker %d (pid %d) exited with %s; restarting", worker.index, worker.process.pid, code)
        worker.channel.close()
        await asyncio.sleep(RESTART_BACKOFF)
        if self.draining:
            return
        replacement = await self._spawn(worker.index, worker.restarts + 1)
        self.workers[worker.index] = replacement

    # -- reload -----------------------------------------------------------------------------------------------
    async def reload(self) -> bool:
        """Validate the routes file again and hand every worker the new version; on error keep the old one."""
        async with self._reload_lock:
            try:
                snapshot = compile_snapshot(self.path, self.registry, self.settings, self.snapshot.version + 1)
            except ConfigError as exc:
                self.reloads["failure"] += 1
                for issue in exc.issues:
                    log.error("reload refused, keeping version %d: %s", self.snapshot.version, issue)
                return False
            self.snapshot = snapshot
            # A worker being restarted gets this snapshot when it starts; only the live ones are told now.
            live = [w for w in self.workers if w.process.returncode is None]
            replies = await asyncio.gather(*(self._load(w) for w in live), return_exceptions=True)
            ok = all(r is True or isinstance(r, ConnectionError) for r in replies)
            self.reloads["success" if ok else "failure"] += 1
            log.info(
                "routes version %d handed to %d workers (%s)", snapshot.version, len(replies), "ok" if ok else "failed"
            )
            return ok

    async def _load(self, worker: WorkerHandle) -> bool:
        reply = await worker.channel.request({"type": "load", "routes": self.snapshot.message()}, START_TIMEOUT)
        if reply.get("type") == "loaded":
            worker.version = int(reply["version"])
            return True
        log.error("worker %d refused version %d: %s", worker.index, self.snapshot.version, reply.get("errors"))
        return False

    async def _watch(self) -> None:
        """--watch: reload when the file's mtime or size changes (polling: no extra dependency, any filesystem)."""
        last = _stamp(self.path)
        while True:
            await asyncio.sleep(1.0)
            stamp = _stamp(self.path)
            if stamp != last:
                last = stamp
                await self.reload()

    # -- admin views ------------------------------------------------------------------------------------------
    async def metrics(self) -> bytes:
        replies = await asyncio.gather(
            *(w.channel.request({"type": "metrics"}, 2.0) for w in self.workers if w.ready), return_exceptions=True
        )
        snapshots = [r["data"] for r in replies if isinstance(r, dict) and r.get("type") == "metrics"]
        return render(snapshots, {"routes": len(self.snapshot.config.routes), "reloads": self.reloads})

    def routes_view(self) -> dict[str, Any]:
        return {
            "version": self.snapshot.version,
            "source": self.snapshot.source,
            "workers": [
                {"index": w.index, "pid": w.process.pid, "version": w.version, "ready": w.ready} for w in self.workers
            ],
            **redacted_routes(self.snapshot.config),
        }

    async def _start_admin(self) -> web.AppRunner:
        runner = web.AppRunner(admin_app(self), access_log=None)
        await runner.setup()
        where = self.settings.admin.listen
        await web.TCPSite(runner, where.host, where.port).start()
        log.info("admin listener on %s", where)
        return runner


def _listen(where: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    sock = socket.create_server((where.host, where.port), family=family, backlog=1024, reuse_port=False)
    sock.set_inheritable(True)
    return sock


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


async def _start_demo(listen: str | None) -> web.AppRunner | None:
    if listen is None:
        return None
    from gateway.demo import start_demo_upstream

    where = Listen.parse(listen)
    runner = await start_demo_upstream(where.host, where.port)
    log.info("demo echo backend on %s (pid %d)", where, os.getpid())
    return runner

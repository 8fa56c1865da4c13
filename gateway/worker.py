"""A worker process: serves the data port on the listening socket the supervisor hands it.

Started by the supervisor as `python -m gateway.worker --listen-fd N --control-fd M`; everything else (settings,
the routes snapshot, as validated data with a checksum: never file text) arrives on the control channel. A reload
is prepared (built, its filters started) then committed (swapped) or aborted, as the supervisor says; `drain`
ends the process after in-flight requests finish. The supervisor alone acts on signals: a worker ignores SIGHUP,
SIGINT and SIGTERM, which reach it too when they are sent to the process group (a terminal hang-up or Ctrl-C,
`kill -HUP -PGID`).
"""

# ruff: noqa: E402 -- the signals are ignored before the imports below, which take a good fraction of a second
from __future__ import annotations

import signal

SUPERVISOR_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def ignore_supervisor_signals() -> None:
    """Leave SIGHUP (reload), SIGINT and SIGTERM (drain) to the supervisor, which tells workers over control."""
    for sig in SUPERVISOR_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    ignore_supervisor_signals()  # at once: a signal to the process group must not kill a starting worker

import argparse
import asyncio
import gc
import logging
import os
import socket
import sys
from typing import Any

from gateway.app import Gateway
from gateway.config.definitions import GatewayConfig, checksum
from gateway.control import Message, receive, send
from gateway.errors import ConfigError, ConfigIssue
from gateway.metrics import METRICS
from gateway.observability import ACCESS_LOG
from gateway.routing.table import RouteTable
from gateway.services import use_backend
from gateway.services.redis_state import shared_backend
from gateway.settings import Settings

GC_GEN0_THRESHOLD = 20_000

log = logging.getLogger("sluicegate.worker")


def received_config(routes: Message) -> GatewayConfig:
    """The config of a snapshot message, checked against its checksum. Raises ConfigError."""
    data = routes.get("config")
    if not isinstance(data, dict) or checksum(data) != routes.get("checksum"):
        raise ConfigError([ConfigIssue("<supervisor>", "", "routes snapshot does not match its checksum")])
    try:
        return GatewayConfig.from_data(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError([ConfigIssue("<supervisor>", "", f"malformed routes snapshot: {exc!r}")]) from exc


class Worker:
    def __init__(self, gateway: Gateway, writer: asyncio.StreamWriter) -> None:
        self.gateway, self.writer = gateway, writer
        #: versions built and started, waiting for the supervisor's commit or abort
        self.prepared: dict[int, tuple[GatewayConfig, RouteTable]] = {}
        self._preparing: dict[int, asyncio.Task[Message]] = {}

    async def prepare(self, routes: Message) -> Message:
        """Phase one: build the snapshot and start its filters, without serving it; errors as `load_failed`."""
        version = int(routes["version"])
        try:
            config = received_config(routes)
            self.prepared[version] = (config, await self.gateway.prepare(config, version))
        except ConfigError as exc:
            log.error("routes version %s refused: %s", version, exc)
            return {"type": "load_failed", "version": version, "errors": [str(i) for i in exc.issues]}
        log.info("routes version %d prepared (built, filters started); serving it once every worker has", version)
        return {"type": "prepared", "version": version}

    async def commit(self, version: int, written: float | None = None) -> Message:
        """Phase two: serve the prepared version (the old table's filters stop after its in-flight requests).
        `written`: when the version was stored (seconds since the epoch), for gateway_config_propagation_seconds;
        None for the version a worker starts on (no change propagated)."""
        entry = self.prepared.pop(version, None)
        if entry is None:
            return {"type": "error", "detail": f"version {version} was not prepared"}
        config = self.gateway.commit(*entry)
        for stale in [v for v in self.prepared if v < version]:  # an abort that never arrived: stop them now
            await self.prepared.pop(stale)[1].lifecycle.stop()
        METRICS.routes_loaded = len(config.routes)
        METRICS.served_version(self.gateway.version, written)
        return {"type": "loaded", "version": self.gateway.version}

    async def abort(self, version: int) -> Message:
        """Drop a prepared version: stop what it started. A prepare still running (a `start` that hangs past the
        supervisor's timeout) is cancelled, which stops what it had started."""
        task = self._preparing.get(version)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        entry = self.prepared.pop(version, None)
        if entry is not None:
            await entry[1].lifecycle.stop()
        return {"type": "aborted", "version": version}

    async def serve_control(self, reader: asyncio.StreamReader) -> None:
        """Answer the supervisor until it asks for a drain or goes away. A prepare runs as a task (a filter's
        start may take a while), so metrics scrapes are answered meanwhile."""
        while (message := await receive(reader)) is not None:
            kind = message.get("type")
            if kind == "prepare":
                self._start_prepare(message)
                continue
            if kind == "commit":
                written = message.get("written")
                reply = await self.commit(int(message["version"]), float(written) if written is not None else None)
            elif kind == "abort":
                reply = await self.abort(int(message["version"]))
            elif kind == "metrics":
                data = {**METRICS.snapshot(), "access_log_dropped": ACCESS_LOG.dropped}
                reply = {"type": "metrics", "data": data, "version": self.gateway.version}
            elif kind == "drain":
                await self.drain(float(message["timeout"]))
                await send(self.writer, {"type": "drained", "id": message.get("id")})
                return
            else:
                reply = {"type": "error", "detail": f"unknown message {kind!r}"}
            await send(self.writer, {**reply, "id": message.get("id")})
        log.warning("supervisor gone; draining")
        await self.drain(self.gateway.settings.drain.timeout)

    def _start_prepare(self, message: Message) -> None:
        version = int(message["routes"]["version"])

        async def run() -> Message:
            reply = await self.prepare(message["routes"])
            await send(self.writer, {**reply, "id": message.get("id")})
            return reply

        task = asyncio.get_running_loop().create_task(run())
        self._preparing[version] = task
        task.add_done_callback(lambda _: self._preparing.pop(version, None))

    async def drain(self, timeout: float) -> None:
        server = self.gateway.server
        clean = await server.drain(timeout) if server is not None else True
        if not clean:
            log.warning("drain timeout: connections still open were closed")
        await self.gateway.forwarder.close()
        ACCESS_LOG.flush()  # first: the lines of served requests must not wait on a plugin's stop
        for task in list(self._preparing.values()):
            task.cancel()  # a prepare still running: cancelling it stops what it had started
        for _, table in self.prepared.values():
            await table.lifecycle.stop()
        await self.gateway.stop_components()
        ACCESS_LOG.flush()


def _configure(settings: Settings, level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s",
    )
    ACCESS_LOG.enabled = settings.observability.access_log
    if ACCESS_LOG.enabled:
        os.set_blocking(ACCESS_LOG.fd, False)  # a slow log reader must cost log lines, never request latency


async def main(listen_fd: int, control_fd: int, level: str) -> int:
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=control_fd))
    start = await receive(reader)
    if start is None or start.get("type") != "start":
        return 2
    settings = Settings.model_validate(start["settings"])
    _configure(settings, level)
    try:
        shared = shared_backend(settings)
    except ValueError as exc:
        log.error("cannot start: %s", exc)
        return 1
    if shared is not None:  # before any filter is built: every filter's values go to Redis, shared by all workers
        use_backend(shared)
        log.info("filter state in Redis (key prefix %r)", settings.state_key_prefix())
    try:
        return await _serve(settings, reader, writer, listen_fd, start)
    finally:
        if shared is not None:
            await shared.aclose()


async def _serve(
    settings: Settings, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listen_fd: int, start: Message
) -> int:
    gateway = Gateway(settings)
    worker = Worker(gateway, writer)
    version = int(start["routes"]["version"])
    prepared = await worker.prepare(start["routes"])
    if prepared["type"] != "prepared":
        await send(writer, {**prepared, "id": start.get("id")})
        return 1
    await worker.commit(version)
    await gateway.start(sock=socket.socket(fileno=listen_fd))
    # Long-lived objects (registry, routes) are not garbage; freezing them keeps collections cheap on the hot path.
    gc.collect()
    gc.freeze()
    # A request allocates a few hundred container objects that almost all die young through reference counting.
    # With the default gen-0 threshold (700) a collection runs every few requests and scans the survivors of the
    # moment (in-flight exchanges); at 20,000 it runs ~30x less often for the same garbage (decisions.md D17).
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)
    await send(writer, {"type": "ready", "version": gateway.version, "pid": os.getpid(), "id": start.get("id")})
    await worker.serve_control(reader)
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway.worker")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    ignore_supervisor_signals()  # again, for a caller that did not start this module as __main__
    import uvloop

    try:
        result: Any = uvloop.run(main(args.listen_fd, args.control_fd, args.log_level))
    finally:
        ACCESS_LOG.flush()  # lines of requests cancelled at the drain timeout are written as the loop shuts down
    return int(result)


if __name__ == "__main__":
    sys.exit(run())

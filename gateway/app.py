"""Wiring: registry + settings + route table + forwarder + data server, as one object the CLI and tests use."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

from gateway.config.definitions import GatewayConfig
from gateway.config.source import load_yaml
from gateway.dispatch import Dispatcher
from gateway.errors import ConfigError
from gateway.lb.resolver import PoolSet
from gateway.registry import Registry, load_registry
from gateway.routing.builder import Runtime, build
from gateway.routing.compiler import load_routes_file, validate
from gateway.routing.lifecycle import Lifecycle
from gateway.routing.table import RouteTable
from gateway.server.server import DataServer, start_data_server
from gateway.settings import Settings
from gateway.upstream.forwarder import HttpForwarder

log = logging.getLogger("sluicegate")


class Gateway:
    def __init__(self, settings: Settings | None = None, registry: Registry | None = None) -> None:
        self.settings = settings or Settings()
        self.registry = registry or load_registry()
        #: upstream pools, outside the route table: kept across reloads by name (gateway/lb)
        self.pools = PoolSet(lambda: self.forwarder.pool.tls)
        self.forwarder = HttpForwarder(self.settings, resolver=self.pools)
        self.dispatcher = Dispatcher(self.forwarder)
        self.config: GatewayConfig | None = None
        self.server: DataServer | None = None
        #: extra BuildContext fields for every build in this process (one set per worker: its filter services)
        self.build_context: dict[str, Any] = {}
        #: tables swapped out whose components still have to stop (after their in-flight requests)
        self._retiring: dict[asyncio.Task[None], Lifecycle] = {}

    @property
    def version(self) -> int:
        return self.dispatcher.table.version

    def load_file(self, path: Path) -> GatewayConfig:
        """Validate and build `path` and swap it in atomically. On ConfigError the running table is untouched."""
        config = load_routes_file(path, self.registry, self.settings)
        return self._swap(config, self._build(config, self.version + 1))

    def load_text(self, text: str, source: str = "<routes>", version: int | None = None) -> GatewayConfig:
        """As `load_file`, from a string (tests, the CLI); `version` defaults to the next one."""
        doc, issues = load_yaml(text, source)
        if issues:
            raise ConfigError(issues)
        config = validate(doc, self.registry, self.settings)
        return self._swap(config, self._build(config, self.version + 1 if version is None else version))

    def _build(self, config: GatewayConfig, version: int) -> RouteTable:
        table = build(config, self.registry, self.settings, self._runtime(version))
        if table.lifecycle.components and self.server is not None:
            # Their start must run before the table serves, which only the async path can do.
            raise ConfigError([config.issue("", "filters with start/stop: load with `await Gateway.apply(...)`")])
        return table

    def _runtime(self, version: int) -> Runtime:
        return Runtime(self.dispatcher.terminal, version, self.build_context)

    async def prepare(self, config: GatewayConfig, version: int) -> RouteTable:
        """Phase one of a version change: build `config` and run every component's `start`; nothing swapped.

        Raises ConfigError for a build or a start that fails (what had started is stopped again)."""
        table = build(config, self.registry, self.settings, self._runtime(version))
        try:
            await table.lifecycle.start()
        except Exception as exc:
            who = ", ".join(sorted({type(c).__name__ for c in table.lifecycle.components}))
            issue = config.issue("", f"a filter's start failed ({who}): {type(exc).__name__}: {exc}")
            raise ConfigError([issue]) from exc
        return table

    def commit(self, config: GatewayConfig, table: RouteTable) -> GatewayConfig:
        """Phase two: swap the prepared table in; the old one's components stop after its in-flight requests."""
        old = self.dispatcher.table
        self._swap(config, table)
        if old.lifecycle.components:
            task = asyncio.get_running_loop().create_task(old.lifecycle.retire())
            self._retiring[task] = old.lifecycle
            task.add_done_callback(lambda done: self._retiring.pop(done, None))
        return config

    async def apply(self, config: GatewayConfig, version: int | None = None) -> GatewayConfig:
        """Prepare and commit `config` in this process (one worker, the in-process gateway of tests)."""
        return self.commit(config, await self.prepare(config, self.version + 1 if version is None else version))

    def _swap(self, config: GatewayConfig, table: RouteTable) -> GatewayConfig:
        self.pools.update(config.upstreams)  # before the swap: the new table's lb:// routes find their pools
        self.dispatcher.table = table  # one reference swap: in-flight requests keep the table they started on
        self.config = config
        log.info("routes version %d loaded from %s: %d routes", table.version, config.source, len(table))
        return config

    async def start(
        self, host: str | None = None, port: int | None = None, sock: socket.socket | None = None
    ) -> DataServer:
        """Serve the data port: on `host:port` (settings by default), or on an inherited listening `sock`."""
        if not self.dispatcher.table.lifecycle.started:  # a table loaded synchronously before serving
            await self.dispatcher.table.lifecycle.start()
        self.pools.start()
        self.server = await start_data_server(self.dispatcher.handle, self.settings, host=host, port=port, sock=sock)
        return self.server

    async def stop_components(self) -> None:
        """At drain, after the last request: stop the serving table's components and those still retiring."""
        for task, lifecycle in list(self._retiring.items()):
            task.cancel()  # the drain has ended every request it could wait for
            await lifecycle.stop()
        await self.dispatcher.table.lifecycle.stop()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        await self.stop_components()
        await self.pools.aclose()
        await self.forwarder.close()

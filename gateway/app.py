"""Wiring: registry + settings + route table + forwarder + data server, as one object the CLI and tests use."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from gateway.config.definitions import GatewayConfig
from gateway.config.source import load_yaml
from gateway.dispatch import Dispatcher
from gateway.errors import ConfigError
from gateway.lb.resolver import PoolSet
from gateway.registry import Registry, load_registry
from gateway.routing.compiler import compile_config, load_routes_file
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

    @property
    def version(self) -> int:
        return self.dispatcher.table.version

    def load_file(self, path: Path) -> GatewayConfig:
        """Compile `path` and swap it in atomically. On ConfigError the running table is untouched."""
        config, table = load_routes_file(path, self.registry, self.settings, self.dispatcher.terminal, self.version + 1)
        return self._swap(config, table)

    def load_text(self, text: str, source: str = "<routes>", version: int | None = None) -> GatewayConfig:
        """As `load_file`, from a string (tests, the supervisor's snapshots); `version` defaults to the next one."""
        doc, issues = load_yaml(text, source)
        if issues:
            raise ConfigError(issues)
        number = self.version + 1 if version is None else version
        config, table = compile_config(doc, self.registry, self.settings, self.dispatcher.terminal, number)
        return self._swap(config, table)

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
        self.pools.start()
        self.server = await start_data_server(self.dispatcher.handle, self.settings, host=host, port=port, sock=sock)
        return self.server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        await self.pools.aclose()
        await self.forwarder.close()

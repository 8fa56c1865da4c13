"""Binding the data-port protocol to a listening socket."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from gateway.server.protocol import Handler, HttpProtocol
from gateway.settings import Settings


@dataclass
class DataServer:
    """A listening data port and the connections it holds."""

    server: asyncio.Server
    connections: set[HttpProtocol] = field(default_factory=set)

    @property
    def port(self) -> int:
        sockets = self.server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def close(self) -> None:
        """Stop accepting and close every connection (graceful drain arrives with the operations work)."""
        self.server.close()
        for proto in list(self.connections):
            proto.close()
        await self.server.wait_closed()


async def start_data_server(
    handler: Handler, settings: Settings, *, host: str | None = None, port: int | None = None
) -> DataServer:
    """Listen on the configured (or given) address and serve `handler` on every connection."""
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()
    server = await loop.create_server(
        lambda: HttpProtocol(handler, settings, connections),
        host=host if host is not None else settings.listen.host,
        port=port if port is not None else settings.listen.port,
        reuse_address=True,
        backlog=1024,
    )
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return DataServer(server, connections)

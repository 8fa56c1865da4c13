"""Binding the data-port protocol to a listening socket."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from gateway.server.protocol import Handler, HttpProtocol
from gateway.server.request import EdgeFields
from gateway.settings import Settings

#: Seconds the drain waits, after its timeout, for WebSocket frames in flight to end so close 1001 can follow them.
GOING_AWAY_GRACE = 1.0


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
        """Stop accepting and close every connection now."""
        self.server.close()
        for proto in list(self.connections):
            proto.close()
        await self.server.wait_closed()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting; let every request whose head was read finish (Connection: close), within `timeout`.

        Idle keep-alive connections close at once. Returns True when all connections ended in time; what is left
        after `timeout` is closed, a WebSocket after close 1001 both ways (within GOING_AWAY_GRACE more).
        """
        self.server.close()
        for proto in list(self.connections):
            proto.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        clean = not self.connections
        # WebSockets still open get close 1001 (going away) both ways, as RFC 6455 §7.4.1 intends for a server
        # shutting down, instead of a cut the client reads as 1006; a frame in flight is let through first.
        going = [p.ws_relay.go_away() for p in self.connections if p.ws_relay is not None and not p.closing]
        if going:
            await asyncio.wait(going, timeout=GOING_AWAY_GRACE)
        for proto in list(self.connections):
            proto.close()
        return clean


async def start_data_server(
    handler: Handler,
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> DataServer:
    """Listen on the configured (or given) address — or serve an inherited listening `sock` — with `handler`."""
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()
    edge_fields = EdgeFields.of(settings)

    def factory() -> HttpProtocol:
        return HttpProtocol(handler, settings, connections, edge_fields)

    if sock is not None:
        server = await loop.create_server(factory, sock=sock, backlog=1024)
    else:
        server = await loop.create_server(
            factory,
            host=host if host is not None else settings.listen.host,
            port=port if port is not None else settings.listen.port,
            reuse_address=True,
            backlog=1024,
        )
    for listening in server.sockets:
        if listening.family in (socket.AF_INET, socket.AF_INET6):
            listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return DataServer(server, connections)

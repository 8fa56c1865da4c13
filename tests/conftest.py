"""Shared test harness: real upstream servers, a real gateway on a real socket, raw-socket helpers.

Nothing here is a mock: upstreams are aiohttp apps (or raw asyncio servers) listening on 127.0.0.1, the gateway
is the real server adapter on an ephemeral port, and clients talk to it over TCP. Plain helper functions that
are not fixtures live in tests/helpers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.demo import demo_app
from gateway.settings import Settings

# Before anything imports it: tests.helpers asserts too, and its failures should report like a test's own.
pytest.register_assert_rewrite("tests.helpers")


@dataclass
class Upstream:
    """A running aiohttp app on 127.0.0.1; `hits` counts requests that reached it."""

    runner: web.AppRunner
    port: int
    hits: list[web.Request] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class GatewayUnderTest:
    gateway: Gateway
    port: int

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


StartUpstream = Callable[..., Awaitable[Upstream]]
StartGateway = Callable[..., Awaitable[GatewayUnderTest]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
StartRaw = Callable[[RawHandler], Awaitable[int]]


async def start_app(app: web.Application, ssl_context: Any = None) -> Upstream:
    hits: list[web.Request] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> Any:
        hits.append(request)
        return await handler(request)

    app.middlewares.append(count)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    return Upstream(runner, port, hits)


@pytest.fixture
async def start_upstream() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    """Factory: start any aiohttp app as an upstream; all are stopped after the test."""
    started: list[Upstream] = []

    async def start(app: web.Application | None = None, ssl_context: Any = None) -> Upstream:
        upstream = await start_app(app if app is not None else demo_app(), ssl_context)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.runner.cleanup()


@pytest.fixture
async def upstream(start_upstream: Callable[..., Awaitable[Upstream]]) -> Upstream:
    """The demo echo backend as an upstream."""
    return await start_upstream()


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Awaitable[GatewayUnderTest]]]:
    """Factory: start a gateway with routes YAML text (and optional Settings) on 127.0.0.1:<free port>."""
    started: list[Gateway] = []

    async def start(routes: str, settings: Settings | None = None) -> GatewayUnderTest:
        gateway = Gateway(settings or Settings())
        gateway.load_text(routes, "test-routes.yaml")
        server = await gateway.start("127.0.0.1", 0)
        started.append(gateway)
        return GatewayUnderTest(gateway, server.port)

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def start_raw() -> AsyncIterator[StartRaw]:
    """Factory: a raw asyncio upstream on 127.0.0.1 running `handler` per connection; returns its port.

    For framings that must be exotic or broken. Every server and connection is torn down after the test.
    """
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def start(handler: RawHandler) -> int:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(run, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


async def raw_exchange(port: int, data: bytes, *, read_timeout: float = 3.0) -> bytes:
    """Send raw bytes on one connection and return everything read until the server closes (or a guard timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


def status_of(raw: bytes) -> int:
    """Status code of the first response in `raw` (0 when there is none)."""
    if not raw.startswith(b"HTTP/1."):
        return 0
    return int(raw.split(b" ", 2)[1])

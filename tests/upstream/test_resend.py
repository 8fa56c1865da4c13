"""The one resend below the Retry filter: once, on a fresh connection, only when nothing can have reached the
upstream's application (the socket refused the head outright) or — idempotent methods with a replayable or absent
body only — the pooled connection hit EOF before any response byte. Nothing else is ever sent twice.

The upstreams are raw servers on 127.0.0.1 that count, from their own side, how often each request arrived: that
count is the only honest witness of "sent twice".
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.exchange import Endpoint, Exchange, Next, Response
from gateway.metrics import METRICS
from gateway.registry import Registry, load_registry
from gateway.settings import Settings
from gateway.spec import ComponentConfig, FilterSpec
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.pool import ConnectionPool
from tests.conftest import GatewayUnderTest
from tests.helpers import fetch
from tests.upstream.support import eventually, settings

StartWith = Callable[[int, Settings], Awaitable[GatewayUnderTest]]


class NoArgs(ComponentConfig):
    """The config of the test-only filters below: they take no arguments."""


@dataclass
class Attempts:
    """Records `len(exchange.tried)` once the forwarder is done with each request (the number of attempts)."""

    seen: list[int] = field(default_factory=list)

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        try:
            return await call_next(exchange)
        finally:
            self.seen.append(len(exchange.tried))


async def buffer_body(exchange: Exchange, call_next: Next) -> Response:
    """Buffers the request body (as a retrying filter does), which makes it replayable."""
    exchange.body = await exchange.body.buffer(1 << 20)
    return await call_next(exchange)


@pytest.fixture
def attempts() -> Attempts:
    return Attempts()


@pytest.fixture
async def start_with(attempts: Attempts) -> AsyncIterator[StartWith]:
    """A gateway with /api/** to the upstream on `port` (prefix stripped), with the Attempts filter; /buffered/**
    the same with the body buffered first."""
    base = load_registry()
    specs = [
        FilterSpec(name="Attempts", order=990, config=NoArgs, build=lambda c, ctx: attempts, summary="", example={}),
        FilterSpec(name="Buffer", order=991, config=NoArgs, build=lambda c, ctx: buffer_body, summary="", example={}),
    ]
    registry = Registry(
        {**base.filters, **{s.name: s for s in specs}}, base.predicates, {**base.origins, "Attempts": "tests"}
    )
    started: list[Gateway] = []

    async def start(port: int, config: Settings) -> GatewayUnderTest:
        gateway = Gateway(config, registry)
        gateway.load_text(
            f"""
routes:
  - id: r
    uri: http://127.0.0.1:{port}
    predicates: [Path=/api/**]
    filters: [StripPrefix=1, Attempts]
  - id: b
    uri: http://127.0.0.1:{port}
    predicates: [Path=/buffered/**]
    filters: [StripPrefix=1, Attempts, Buffer]
""",
            "test-routes.yaml",
        )
        started.append(gateway)
        return GatewayUnderTest(gateway, (await gateway.start("127.0.0.1", 0)).port)

    yield start
    for gateway in started:
        await gateway.stop()


@dataclass
class Arrival:
    method: str
    path: str
    request_id: str
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Arrival:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    body = await reader.readexactly(int(fields.get("content-length", "0")))
    return Arrival(method, path, fields.get("x-request-id", ""), body)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class DropsReused:
    """Answers the first request on each connection; a request on a reused connection is read whole, then the
    connection is closed without an answer (what losing the keep-alive race looks like). With `fresh_too`, every
    request after the very first one is dropped, on new connections as well."""

    fresh_too: bool = False
    arrivals: list[Arrival] = field(default_factory=list)
    connections: int = 0

    def count(self, path: str) -> int:
        return sum(1 for arrival in self.arrivals if arrival.path == path)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        while True:
            self.arrivals.append(await read_request(reader))
            if served or (self.fresh_too and len(self.arrivals) > 1):
                return  # closed by the harness: FIN, nothing answered
            writer.write(OK)
            await writer.drain()
            served += 1


def resends(reason: str) -> int:
    return METRICS.upstream_resends.get(("r", reason), 0) + METRICS.upstream_resends.get(("b", reason), 0)


async def test_get_is_resent_once_on_a_fresh_connection(
    start_raw: Any, start_with: StartWith, attempts: Attempts, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = DropsReused()
    gw = await start_with(await start_raw(upstream), Settings())
    before = resends("eof_before_response")
    assert (await fetch(gw, "/api/first")).status == 200
    with caplog.at_level(logging.INFO, logger="sluicegate.upstream"):
        reply = await fetch(gw, "/api/again")
    assert (reply.status, reply.body) == (200, b"ok")
    assert upstream.count("/again") == 2 and upstream.connections == 2
    assert attempts.seen == [1, 2]
    assert resends("eof_before_response") == before + 1
    request_id = reply.headers["X-Request-Id"]
    assert {a.request_id for a in upstream.arrivals if a.path == "/again"} == {request_id}
    assert any(request_id in r.getMessage() and "eof_before_response" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("prefix", "data"), [("/api", None), ("/api", b"payload"), ("/buffered", b"payload")])
async def test_post_is_not_resent(
    prefix: str, data: bytes | None, start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    # Without a body, or with a replayable one, only the method keeps it from being sent again.
    upstream = DropsReused()
    gw = await start_with(await start_raw(upstream), Settings())
    before = resends("eof_before_response")
    assert (await fetch(gw, f"{prefix}/first")).status == 200
    reply = await fetch(gw, f"{prefix}/again", method="POST", data=data)
    assert reply.status == 502
    assert upstream.count("/again") == 1
    assert attempts.seen == [1, 1]
    assert resends("eof_before_response") == before


async def test_a_put_whose_streamed_body_was_read_is_not_resent(
    start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    upstream = DropsReused()
    gw = await start_with(await start_raw(upstream), Settings())
    assert (await fetch(gw, "/api/first")).status == 200
    reply = await fetch(gw, "/api/again", method="PUT", data=b"payload")
    assert reply.status == 502
    assert upstream.count("/again") == 1


async def test_a_put_with_a_replayable_body_is_resent_with_the_same_bytes(
    start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    upstream = DropsReused()
    gw = await start_with(await start_raw(upstream), Settings())
    assert (await fetch(gw, "/buffered/first")).status == 200
    reply = await fetch(gw, "/buffered/again", method="PUT", data=b"payload")
    assert reply.status == 200
    assert [a.body for a in upstream.arrivals if a.path == "/again"] == [b"payload", b"payload"]
    assert attempts.seen == [1, 2]


async def test_a_failure_on_the_fresh_connection_is_a_502_never_a_third_send(
    start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    upstream = DropsReused(fresh_too=True)
    gw = await start_with(await start_raw(upstream), Settings())
    assert (await fetch(gw, "/api/first")).status == 200
    reply = await fetch(gw, "/api/again")
    assert reply.status == 502
    assert upstream.count("/again") == 2 and upstream.connections == 2
    assert attempts.seen == [1, 2]


async def test_a_fresh_connection_closing_unanswered_is_never_resent(
    start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    arrivals = 0

    async def drop_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrivals
        await read_request(reader)
        arrivals += 1

    gw = await start_with(await start_raw(drop_everything), Settings())
    assert (await fetch(gw, "/api/x")).status == 502
    assert arrivals == 1 and attempts.seen == [1]


# -- the socket refuses the head: nothing was sent, any method goes again -------------------------------------------


def reset_arrived(conn: UpstreamConnection) -> bool:
    """Whether the kernel holds the upstream's RST for `conn` (poll only: the pending error is not consumed)."""
    assert conn.transport is not None
    poller = select.poll()
    poller.register(conn.transport.get_extra_info("socket").fileno(), select.POLLIN)
    return bool(poller.poll(0))


async def test_a_post_whose_head_the_socket_refused_is_resent(
    start_raw: Any, start_with: StartWith, attempts: Attempts
) -> None:
    reset_now = asyncio.Event()
    arrivals: Counter[str] = Counter()
    connections = 0

    async def reset_the_first_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while True:
            arrivals[(await read_request(reader)).path] += 1
            writer.write(OK)
            await writer.drain()
            if first:
                await reset_now.wait()
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # RST: the gateway's next send on it fails outright
                return

    port = await start_raw(reset_the_first_connection)
    gw = await start_with(port, settings(timeouts={"upstream_idle": 60}))
    before = resends("write_refused")
    assert (await fetch(gw, "/api/first")).status == 200
    pool = gw.gateway.forwarder.pool
    assert isinstance(pool, ConnectionPool)
    (pooled,) = pool.idle_connections(Endpoint("127.0.0.1", port, False))
    # A busy loop may not get to read a reset before the next request takes the connection; pausing the read
    # side holds that window open so the write is what finds the connection dead.
    assert pooled.transport is not None
    pooled.transport.pause_reading()
    reset_now.set()
    await eventually(lambda: reset_arrived(pooled))
    reply = await fetch(gw, "/api/again", method="POST", data=b"payload")
    assert (reply.status, reply.body) == (200, b"ok")
    assert arrivals == {"/first": 1, "/again": 1} and connections == 2
    assert attempts.seen == [1, 2]
    assert resends("write_refused") == before + 1

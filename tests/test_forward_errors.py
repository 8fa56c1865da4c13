"""Forwarding core, failures: each upstream failure mapped once (502/504 problem+json), broken upstream framing
never passed on, client disconnects cancel the upstream call (499), and a raising filter becomes a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from pydantic import Field

from gateway.app import Gateway
from gateway.exchange import Exchange, Next, Response
from gateway.metrics import METRICS
from gateway.registry import Registry, load_registry
from gateway.settings import Settings, Timeouts
from gateway.spec import BuildContext, ComponentConfig, FilterSpec
from tests.conftest import StartGateway, StartRaw, Upstream, raw_exchange, status_of
from tests.helpers import api_route, app_serving, free_port, reply_with

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement
StartCancellable = Callable[[web.Application], Awaitable[int]]


async def get_problem(url: str) -> tuple[int, str, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), json.loads(await resp.read())


def assert_problem(status: int, content_type: str, document: dict[str, Any], expected: int) -> None:
    assert status == expected
    assert content_type == "application/problem+json"
    assert document["status"] == expected
    assert document["title"] and document["detail"] and document["type"]


@pytest.fixture
async def start_cancellable() -> AsyncIterator[StartCancellable]:
    """Factory: an aiohttp upstream whose handlers are cancelled when their client connection goes away."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


# -- 502 ------------------------------------------------------------------------------------------------------


async def test_connection_refused_is_502(start_gateway: StartGateway) -> None:
    gw = await start_gateway(api_route(free_port()))
    status, content_type, document = await get_problem(gw.url("/api/x"))
    assert_problem(status, content_type, document, 502)
    assert document["instance"] == "/api/x"


async def test_upstream_reset_before_responding_is_502(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: the close is an RST

    gw = await start_gateway(api_route(await start_raw(reset)))
    assert_problem(*await get_problem(gw.url("/api/x")), 502)


async def test_upstream_closing_without_a_response_is_502(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    gw = await start_gateway(api_route(await start_raw(hang_up)))
    assert_problem(*await get_problem(gw.url("/api/x")), 502)


# -- broken upstream framing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ],
    ids=["cl-and-te", "bad-chunk-size", "two-content-lengths"],
)
async def test_invalid_upstream_framing_is_502(
    payload: bytes, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    port = await start_raw(reply_with(payload, close=False))
    gw = await start_gateway(api_route(port))
    raw = await raw_exchange(gw.port, b"GET /api/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 502
    assert b"application/problem+json" in raw
    assert b"hello" not in raw


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_upstream_closing_mid_body_aborts_the_client_response(
    payload: bytes, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    port = await start_raw(reply_with(payload))
    gw = await start_gateway(api_route(port))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/x")) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), GUARD)


async def test_bad_chunk_after_the_head_was_sent_aborts_the_client_response(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    client_has_head = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.wait_for(client_has_head.wait(), GUARD)
        writer.write(b"zz\r\nworld\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    port = await start_raw(handler)
    gw = await start_gateway(api_route(port))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/x")) as resp:
        assert resp.status == 200
        client_has_head.set()
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), GUARD)


# -- 504 and timeouts -----------------------------------------------------------------------------------------


async def test_route_response_timeout_is_504(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(api_route(upstream.port, "{response-timeout: 200}"))
    assert_problem(*await get_problem(gw.url("/api/delay/2")), 504)


async def test_settings_response_timeout_applies_without_route_metadata(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(api_route(upstream.port), Settings(timeouts=Timeouts(response=0.2)))
    assert_problem(*await get_problem(gw.url("/api/delay/2")), 504)


async def test_negative_route_response_timeout_disables_it(upstream: Upstream, start_gateway: StartGateway) -> None:
    settings = Settings(timeouts=Timeouts(response=0.1))
    gw = await start_gateway(api_route(upstream.port, "{response-timeout: -1}"), settings)
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/delay/0.5")) as resp:
        assert resp.status == 200
        assert await resp.text() == "delayed\n"


def hanging_listener() -> tuple[socket.socket, list[socket.socket]] | None:
    """A listener with backlog 0 whose queue is filled by never-accepted connections: new SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(64):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
        _, writable, _ = select.select([], [filler], [], 0.5)
        if not writable:
            return listener, fillers  # this connect hangs: the next one (the gateway's) will too
    for sock in [listener, *fillers]:
        sock.close()
    return None


async def test_connect_timeout_is_504(start_gateway: StartGateway) -> None:
    hanging = hanging_listener()
    if hanging is None:
        pytest.skip("this kernel completes connects to a full backlog; a hanging connect cannot be made")
    listener, fillers = hanging
    try:
        port = listener.getsockname()[1]
        gw = await start_gateway(api_route(port, "{connect-timeout: 300}"))
        status, content_type, document = await asyncio.wait_for(get_problem(gw.url("/api/x")), GUARD)
        assert_problem(status, content_type, document, 504)
        assert "connect" in document["detail"]
    finally:
        for sock in [listener, *fillers]:
            sock.close()


async def test_body_idle_timeout_aborts_the_client_response(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    upstream_closed = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await reader.read()  # stall, sending nothing more, until the gateway gives up on us
        upstream_closed.set()

    gw = await start_gateway(api_route(await start_raw(stall), "{body-idle-timeout: 300}"))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/api/x")) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), GUARD)
    await asyncio.wait_for(upstream_closed.wait(), GUARD)


# -- a client that goes away ----------------------------------------------------------------------------------


def recorded(status: int) -> int:
    """Requests this process's metrics recorded with `status` (499: the client went away)."""
    return sum(h.count for (_, _, code), h in METRICS.requests.items() if code == status)


async def wait_for_recorded(status: int, before: int) -> None:
    async def poll() -> None:
        while recorded(status) <= before:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), GUARD)


async def leave(writer: asyncio.StreamWriter, how: str) -> None:
    """Go away from the gateway: an orderly close (FIN, as every HTTP client does) or a reset (RST)."""
    if how == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_leaving_while_waiting_cancels_the_upstream_call(
    how: str, start_cancellable: StartCancellable, start_gateway: StartGateway
) -> None:
    aborted_before = recorded(499)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="too late")

    gw = await start_gateway(api_route(await start_cancellable(app_serving("/slow", slow))))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /api/slow HTTP/1.1\r\nHost: gw\r\n\r\n")
    await asyncio.wait_for(started.wait(), GUARD)
    await leave(writer, how)
    await asyncio.wait_for(cancelled.wait(), GUARD)
    await wait_for_recorded(499, aborted_before)


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_leaving_mid_body_cancels_the_upstream_stream(
    how: str, start_cancellable: StartCancellable, start_gateway: StartGateway
) -> None:
    aborted_before = recorded(499)
    stopped = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(b"tick\n")
                await asyncio.sleep(0.02)
        except (asyncio.CancelledError, ConnectionError):
            stopped.set()
            raise

    gw = await start_gateway(api_route(await start_cancellable(app_serving("/endless", endless))))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /api/endless HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"tick\n"), GUARD)).startswith(b"HTTP/1.1 200")
    await leave(writer, how)
    await asyncio.wait_for(stopped.wait(), GUARD)
    await wait_for_recorded(499, aborted_before)


# -- an exception inside a filter -----------------------------------------------------------------------------


class BoomConfig(ComponentConfig):
    side: Literal["request", "response"] = Field("request", description="Where the filter raises.")


class Boom:
    """A test-only filter that raises, on the request side or after the upstream answered."""

    def __init__(self, side: str) -> None:
        self.side = side

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        if self.side == "request":
            raise RuntimeError("boom before forwarding")
        response = await call_next(exchange)
        raise RuntimeError(f"boom after a {response.status}")


def _build_boom(config: BoomConfig, context: BuildContext) -> Boom:
    return Boom(config.side)


BOOM = FilterSpec(name="Boom", order=999, config=BoomConfig, build=_build_boom, summary="Raises.", example={})


@pytest.mark.parametrize("side", ["request", "response"])
async def test_exception_in_a_filter_is_500_and_logged(
    side: str, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    base = load_registry()
    registry = Registry({**base.filters, "Boom": BOOM}, base.predicates, {**base.origins, "Boom": "tests"})
    gateway = Gateway(Settings(), registry)
    gateway.load_text(
        f"""
routes:
  - id: boom
    uri: {upstream.url}
    predicates: [Path=/api/**]
    filters: [StripPrefix=1, {{name: Boom, args: {{side: {side}}}}}]
""",
        "test-routes.yaml",
    )
    server = await gateway.start("127.0.0.1", 0)
    try:
        request = b"GET /api/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
        raw = await raw_exchange(server.port, request)
    finally:
        await gateway.stop()
    assert status_of(raw) == 500
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nContent-Type: application/problem+json\r\n" in head
    document = json.loads(body)
    assert document["status"] == 500
    assert "boom" not in document["detail"]  # the filter's message stays in the log, not in the answer
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in errors)
    assert len(upstream.hits) == (1 if side == "response" else 0)

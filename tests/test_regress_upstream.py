"""Regressions on the upstream side of the data path: framing an upstream must not be able to smuggle past us,
pooled connections that must come back usable, honest aborts, and upstream connections that must be closed.

Every upstream is real (raw asyncio servers on 127.0.0.1) and observed from its own side where that is the
only honest witness: which connection a request arrived on, and whether the gateway closed a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.body import StreamBody
from gateway.exchange import Exchange, Next, Response
from gateway.registry import Registry, load_registry
from gateway.settings import Settings, Timeouts
from gateway.spec import ComponentConfig, FilterSpec
from tests.conftest import StartGateway, StartRaw, status_of
from tests.helpers import api_route, converse, parse_responses, read_until_closed, reply_with

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement
GET_API = b"GET /api/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
StartWith = Callable[[str, Registry], Awaitable[int]]


@pytest.fixture
async def start_with() -> AsyncIterator[StartWith]:
    """Factory: a gateway on 127.0.0.1 with routes YAML and a registry holding test-only filters; returns its port."""
    started: list[Gateway] = []

    async def start(routes: str, registry: Registry) -> int:
        gateway = Gateway(Settings(), registry)
        gateway.load_text(routes, "test-routes.yaml")
        started.append(gateway)
        return (await gateway.start("127.0.0.1", 0)).port

    yield start
    for gateway in started:
        await gateway.stop()


def with_filter(spec: FilterSpec[Any]) -> Registry:
    base = load_registry()
    return Registry({**base.filters, spec.name: spec}, base.predicates, {**base.origins, spec.name: "tests"})


async def happens(event: asyncio.Event, guard: float = GUARD) -> bool:
    """True once `event` is set; False if the guard expired first."""
    try:
        await asyncio.wait_for(event.wait(), guard)
    except TimeoutError:
        return False
    return True


class NoArgs(ComponentConfig):
    """The config of the test-only filters below: they take no arguments."""


@dataclass
class Firehose:
    """A raw upstream that answers with a huge Content-Length body and reports when the gateway closes on it."""

    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        pump = asyncio.create_task(self._pump(writer))
        try:
            await reader.read()  # b"" at the gateway's FIN, ConnectionResetError at its RST
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    @staticmethod
    async def _pump(writer: asyncio.StreamWriter) -> None:
        block = b"z" * (1 << 20)
        with contextlib.suppress(ConnectionError):
            for _ in range(1024):
                writer.write(block)
                await writer.drain()


# -- 1.1: the client gets exactly the upstream's first message ---------------------------------------------------

SECOND = b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\nX-Smuggled: yes\r\nSet-Cookie: smuggled=1\r\n\r\nsecond\n"
FIRSTS = {
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-First: 1\r\n\r\nfirst\n", b"200 OK", b"first\n"),
    "empty": (b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\nX-First: 1\r\n\r\n", b"200 Fine", b""),
    "no-content": (b"HTTP/1.1 204 No Content\r\nX-First: 1\r\n\r\n", b"204 No Content", b""),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-First: 1\r\n\r\n6\r\nfirst\n\r\n0\r\n\r\n",
        b"200 OK",
        b"first\n",
    ),
}


@pytest.mark.parametrize("first", list(FIRSTS))
async def test_a_second_response_in_the_same_write_is_never_passed_on(
    first: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    payload, status_line, body = FIRSTS[first]
    per_connection: list[int] = []  # requests seen on each upstream connection

    async def two_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = len(per_connection)
        per_connection.append(0)
        while True:
            await reader.readuntil(b"\r\n\r\n")
            per_connection[me] += 1
            # On a reused connection the queued second message would answer the next request: never allowed.
            writer.write(payload + SECOND if per_connection[me] == 1 else b"HTTP/1.1 202 Reused\r\n\r\n")
            await writer.drain()

    gw = await start_gateway(api_route(await start_raw(two_at_once)))
    for _ in range(2):
        reply = await converse(gw.port, GET_API)
        assert reply.data.startswith(b"HTTP/1.1 " + status_line + b"\r\n"), reply.data[:200]
        responses = parse_responses(reply.data)
        assert len(responses) == 1, reply.data
        names = [name for name, _ in responses[0].headers]
        assert "x-first" in names
        assert "x-smuggled" not in names and "set-cookie" not in names, reply.data
        assert responses[0].body == body
        assert b"second" not in reply.data
    assert per_connection == [1, 1], "an upstream connection with unsolicited bytes on it was reused"


@pytest.mark.parametrize("trailers_later", [False, True], ids=["one-write", "trailers-later"])
async def test_response_trailers_are_dropped(
    trailers_later: bool, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Own: 1\r\n\r\n5\r\nhello\r\n"
    trailers = b"0\r\nX-Trailer: t\r\nSet-Cookie: from-trailer=1\r\n\r\n"
    client_has_head = asyncio.Event()

    async def with_trailers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if trailers_later:
            writer.write(head)
            await writer.drain()
            await client_has_head.wait()
            writer.write(trailers)
        else:
            writer.write(head + trailers)
        await writer.drain()
        await reader.read()

    gw = await start_gateway(api_route(await start_raw(with_trailers)))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(GET_API)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
        client_has_head.set()
        rest, closed = await read_until_closed(reader)
    finally:
        writer.close()
    data = first + rest
    assert closed
    assert b"X-Trailer" not in data and b"from-trailer" not in data, data
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200]
    assert responses[0].header("x-own") == "1"
    assert responses[0].body == b"hello"
    assert data.endswith(b"\r\n0\r\n\r\n")  # ended cleanly, with no trailer section of its own


# -- 1.2: a response that completed while its connection's reading was paused ------------------------------------

BIG = 256 * 1024 + 1  # one byte over a streamed body's 256 KiB high-water mark: the byte that crosses it ends the body


@dataclass
class Hold:
    """Stands for a client that reads slowly: keeps the upstream response unread until `release` (or cancellation)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: list[Response] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        self.held.append(response)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return response

    async def fully_received(self) -> None:
        """Wait until the gateway holds the whole upstream body (unread): the message is complete upstream-side."""
        while not (self.held and isinstance(body := self.held[0].body, StreamBody) and body.complete):
            await asyncio.sleep(0.01)


async def big_and_small(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive upstream: /big is BIG bytes of b"b" in one write, anything else is "ok"."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /big "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"b" * BIG)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()


@pytest.mark.parametrize("slow_client", ["still-reading", "gone"])
async def test_a_response_completed_while_reading_was_paused_leaves_no_paused_pooled_connection(
    slow_client: str, start_raw: StartRaw, start_with: StartWith
) -> None:
    hold = Hold()
    spec = FilterSpec(name="Hold", order=998, config=NoArgs, build=lambda c, ctx: hold, summary="", example={})
    up = await start_raw(big_and_small)
    port = await start_with(
        f"""
routes:
  - id: big
    uri: http://127.0.0.1:{up}
    predicates: [Path=/big]
    filters: [Hold]
  - id: rest
    uri: http://127.0.0.1:{up}
    predicates: [Path=/**]
    metadata: {{response-timeout: 3000}}
""",
        with_filter(spec),
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: gw\r\n\r\n")
        await asyncio.wait_for(hold.fully_received(), GUARD)
        if slow_client == "gone":
            writer.close()
            assert await happens(hold.cancelled)
        # The next request to the same upstream, while the first response is unread (or abandoned): answered
        # by the upstream, not a 504 from a pooled connection nobody reads.
        reply = await converse(port, b"GET /small HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", GUARD)
        assert status_of(reply.data) == 200, reply.data[:300]
        assert parse_responses(reply.data)[0].body == b"ok"
        if slow_client == "still-reading":
            hold.release.set()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
            assert status_of(head) == 200
            assert await asyncio.wait_for(reader.readexactly(BIG), GUARD) == b"b" * BIG
    finally:
        writer.close()


# -- 1.7: an upstream body cut by a reset is never passed on as complete -------------------------------------------

CUT = {
    "close-delimited": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial-body-",
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial-body-",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\npartial-body-\r\n",
}


def is_complete(data: bytes) -> bool:
    """Whether the one response in `data` arrived whole according to its own framing."""
    head, _, body = data.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"\r\n0\r\n\r\n") or body == b"0\r\n\r\n"
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.partition(b":")[2])
    return True  # close-delimited for the client: it cannot tell; the gateway must never choose this framing


@pytest.mark.parametrize("framing", list(CUT))
async def test_upstream_reset_mid_body_aborts_the_client_response(
    framing: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    client_has_part = asyncio.Event()

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(CUT[framing])
        await writer.drain()
        await client_has_part.wait()
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a TCP RST, as a crashing upstream sends

    gw = await start_gateway(api_route(await start_raw(cut)))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"partial-body-"), GUARD)
        client_has_part.set()
        rest, closed = await read_until_closed(reader, GUARD)
    finally:
        writer.close()
    assert status_of(first) == 200
    assert closed, "the client connection was left open after the upstream reset"
    assert not is_complete(first + rest), first + rest


# -- 1.8: stalls in the write directions are bounded by the body-idle timeout --------------------------------------


async def test_upstream_that_never_reads_the_request_body_is_given_up_on(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(3600)  # holds the connection and reads nothing more

    up = await start_raw(never_reads)
    gw = await start_gateway(api_route(up, "{response-timeout: 1000, body-idle-timeout: 1000}"))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)

    async def upload() -> None:
        writer.write(b"POST /api/x HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % (256 << 20))
        block = b"y" * (1 << 20)
        with contextlib.suppress(ConnectionError):
            for _ in range(256):
                writer.write(block)
                await writer.drain()

    sender = asyncio.create_task(upload())
    try:
        data, closed = await read_until_closed(reader, GUARD)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
    assert closed, "the client was left waiting on an upstream that never read the request body"
    assert status_of(data) in (0, 504), data[:300]  # a 504, or the connection dropped without an answer


async def test_client_that_stops_reading_is_dropped_with_its_upstream(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    firehose = Firehose()
    up = await start_raw(firehose)
    gw = await start_gateway(api_route(up, "{body-idle-timeout: 1000}"), Settings(timeouts=Timeouts(body_idle=1.0)))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, set before connecting
    client.connect(("127.0.0.1", gw.port))
    reader, writer = await asyncio.open_connection(sock=client)
    try:
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert status_of(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)) == 200
        # ...and no more reads: the gateway must give up on both connections instead of holding them.
        assert await happens(firehose.closed, 3 * GUARD), "the gateway kept the upstream connection open"
        _, closed = await read_until_closed(reader, GUARD)
    finally:
        writer.close()
    assert closed, "the gateway kept the client connection open"


# -- 1.9: a filter failing after the upstream answered does not leak the upstream connection ----------------------


async def fail_after(exchange: Exchange, call_next: Next) -> Response:
    response = await call_next(exchange)
    raise RuntimeError(f"a response-side bug after a {response.status}")


FAIL_AFTER = FilterSpec(
    name="FailAfter", order=997, config=NoArgs, build=lambda c, ctx: fail_after, summary="", example={}
)


@pytest.mark.parametrize(
    ("filters", "path", "status"),
    [
        ('["AddResponseHeader=X-V,{v}"]', "/x/a%0D%0Ab", 400),  # the value would split the header
        ("[FailAfter]", "/x/a", 500),
    ],
    ids=["header-injection", "raising-filter"],
)
async def test_upstream_connection_is_closed_when_a_filter_fails_after_call_next(
    filters: str, path: str, status: int, start_raw: StartRaw, start_with: StartWith
) -> None:
    firehose = Firehose()
    up = await start_raw(firehose)
    routes = f"""
routes:
  - id: r
    uri: http://127.0.0.1:{up}
    predicates: ["Path=/x/{{v}}"]
    filters: {filters}
"""
    port = await start_with(routes, with_filter(FAIL_AFTER))
    reply = await converse(port, f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode(), GUARD)
    assert status_of(reply.data) == status, reply.data[:300]
    assert await happens(firehose.closed), "the upstream stream the filter dropped was never closed"


# -- issue 9, finding 6: bytes after a complete `Connection: close` response -----------------------------------------


@pytest.mark.parametrize("same_segment", [True, False], ids=["same-segment", "later-segment"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_extra_bytes_after_a_complete_close_response_are_dropped(
    same_segment: bool, framing: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    """The complete response is delivered whichever segment the extra bytes share; they are dropped and the
    connection is never used again (the second request arrives on a fresh upstream connection)."""
    body = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    body += (
        b"Content-Length: 6\r\n\r\nfirst\n"
        if framing == "content-length"
        else b"Transfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n0\r\n\r\n"
    )
    extra = b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\nContent-Length: 6\r\n\r\nsecond"
    per_connection: list[int] = []

    async def close_then_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = len(per_connection)
        per_connection.append(0)
        await reader.readuntil(b"\r\n\r\n")
        per_connection[me] += 1
        if same_segment:
            writer.write(body + extra)
        else:
            writer.write(body)
            await writer.drain()
            await asyncio.sleep(0.05)  # most likely its own segment; the assertions hold either way
            writer.write(extra)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # hold the connection: only the gateway may decide not to reuse it

    gw = await start_gateway(api_route(await start_raw(close_then_garbage)))
    for _ in range(2):
        reply = await converse(gw.port, GET_API)
        responses = parse_responses(reply.data)
        assert [r.status for r in responses] == [200], reply.data[:300]
        assert responses[0].body == b"first\n"
        assert b"second" not in reply.data and b"x-smuggled" not in reply.data.lower()
    assert per_connection == [1, 1], "a connection that announced Connection: close was reused"


# -- issue 9, finding 3: chunk extensions of a response are bounded -------------------------------------------------

CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_a_response_with_a_1_mib_chunk_extension_is_502(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    gw = await start_gateway(api_route(await start_raw(reply_with(CHUNKED_OK + b"1;e=" + b"v" * (1 << 20)))))
    reply = await converse(gw.port, GET_API)
    assert status_of(reply.data) == 502, reply.data[:300]
    assert b"chunk" in reply.data


async def test_a_trickled_response_chunk_extension_aborts_the_response(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    """After the head went out the client's response is aborted (never completed) and the upstream dropped."""
    sent = [0]
    dropped = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(CHUNKED_OK + b"5\r\nhello\r\n1;e=")
        try:
            while sent[0] < (1 << 20):  # the bound on sent bytes is the guard
                await asyncio.sleep(0.005)
                writer.write(b"v" * 1024)
                await writer.drain()
                sent[0] += 1024
                if writer.is_closing() or reader.at_eof():
                    break
        except ConnectionError:
            pass
        dropped.set()

    gw = await start_gateway(api_route(await start_raw(trickle)))
    reply = await converse(gw.port, GET_API, guard=GUARD)
    assert reply.closed
    assert status_of(reply.data) == 200
    assert not reply.data.endswith(b"0\r\n\r\n"), "an aborted response looked complete"
    assert await happens(dropped)
    assert sent[0] < 256 * 1024, "the upstream's extension was read far beyond its bound"


async def test_response_chunk_extensions_within_the_bound_pass(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    extension = b";e=" + b"v" * (16 * 1024 - 3)
    body = b"".join(b"2" + extension + b"\r\nok\r\n" for _ in range(20)) + b"0\r\n\r\n"
    gw = await start_gateway(api_route(await start_raw(reply_with(CHUNKED_OK + body))))
    reply = await converse(gw.port, GET_API)
    responses = parse_responses(reply.data)
    assert [r.status for r in responses] == [200]
    assert responses[0].body == b"ok" * 20

"""Limits and timeouts of the data port: 414/431 without upstream contact, slowloris, idle keep-alive, stalled
bodies, `Expect: 100-continue`, pipelining, HTTP/1.0, and CR/LF injection through path variables."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httptools
from aiohttp import web

from gateway.body import StreamBody
from gateway.server.chunks import ChunkLines
from gateway.settings import Limits, Settings, Timeouts
from tests.conftest import StartGateway, StartUpstream, Upstream, status_of
from tests.helpers import (
    SOCKET_GUARD,
    app_serving,
    catch_all,
    converse,
    echoed,
    header_names,
    parse_responses,
    read_until_closed,
)

SMALL = Limits(max_request_line=256, max_header_bytes=1024, max_headers=8)


async def read_response(reader: asyncio.StreamReader, guard: float = SOCKET_GUARD) -> bytes:
    """One Content-Length-framed response (head and body) from a kept-alive connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), guard)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await asyncio.wait_for(reader.readexactly(length), guard)


# -- size limits ---------------------------------------------------------------------------------------------


async def test_request_line_over_the_limit_is_414(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(limits=SMALL))
    request = b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 414
    assert reply.closed
    assert upstream.hits == []


async def test_header_block_over_the_limit_is_431(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(limits=SMALL))
    request = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 431
    assert reply.closed
    assert upstream.hits == []


async def test_too_many_header_fields_is_431(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(limits=SMALL))
    fields = b"".join(b"X-F%d: %d\r\n" % (n, n) for n in range(20))
    reply = await converse(gw.port, b"GET /many HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status_of(reply.data) == 431
    assert reply.closed
    assert upstream.hits == []


async def test_default_limits_answer_414_and_431(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    long_line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    big_header = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70 * 1024 + b"\r\n\r\n"
    many = b"GET /many HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: 1\r\n" % n for n in range(200)) + b"\r\n"
    for request, status in ((long_line, 414), (big_header, 431), (many, 431)):
        reply = await converse(gw.port, request)
        assert status_of(reply.data) == status
        assert reply.closed
    assert upstream.hits == []


async def test_requests_within_the_limits_pass(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), Settings(limits=SMALL))
    fields = b"".join(b"X-F%d: %d\r\n" % (n, n) for n in range(5))
    request = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    assert len(upstream.hits) == 1


# -- timeouts ------------------------------------------------------------------------------------------------


def quick(**timeouts: float) -> Settings:
    return Settings(timeouts=Timeouts.model_validate(timeouts))


async def test_slow_header_gets_408_and_close(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), quick(header_read=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Partial: ")  # ...and never finish the head
        await writer.drain()
        data, closed = await read_until_closed(reader)
    finally:
        writer.close()
    assert status_of(data) == 408
    assert closed
    assert upstream.hits == []


async def test_partial_request_line_gets_408(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), quick(header_read=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"GET /sl")
        await writer.drain()
        data, closed = await read_until_closed(reader)
    finally:
        writer.close()
    assert status_of(data) == 408
    assert closed


async def test_silent_connection_is_closed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), quick(header_read=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        data, closed = await read_until_closed(reader)
    finally:
        writer.close()
    assert closed
    assert data == b""


async def test_idle_keep_alive_connection_is_closed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream), quick(keepalive_idle=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await read_response(reader)
        assert status_of(first) == 200
        assert b"connection: close" not in first.lower()  # kept alive...
        rest, closed = await read_until_closed(reader)  # ...until it sits idle
    finally:
        writer.close()
    assert closed
    assert rest == b""


async def test_body_stalled_mid_way_is_408_and_never_complete_upstream(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    outcomes: list[str] = []
    settled = asyncio.Event()

    async def sink(request: web.Request) -> web.Response:
        try:
            data = await request.read()
            outcomes.append(f"complete:{len(data)}")
        except Exception as exc:  # the gateway aborted the request it could not finish
            outcomes.append(f"aborted:{type(exc).__name__}")
            raise
        finally:
            settled.set()
        return web.Response(text="got it")

    upstream = await start_upstream(app_serving("/upload", sink, method="POST"))
    gw = await start_gateway(catch_all(upstream), quick(body_idle=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        data, closed = await read_until_closed(reader)
    finally:
        writer.close()
    assert status_of(data) == 408 or (data == b"" and closed)
    assert closed
    if upstream.hits:
        await asyncio.wait_for(settled.wait(), SOCKET_GUARD)
    assert not any(outcome.startswith("complete") for outcome in outcomes), outcomes


# -- protocol behaviour --------------------------------------------------------------------------------------


async def test_expect_100_continue(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(
            b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SOCKET_GUARD)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        await writer.drain()
        data, closed = await read_until_closed(reader)
    finally:
        writer.close()
    assert status_of(data) == 200
    echo = echoed(data)
    assert echo["body_bytes"] == 5
    assert "expect" not in header_names(echo)


async def test_no_100_continue_when_refused(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(f"""
routes:
  - id: api
    uri: {upstream.url}
    predicates: [Path=/api/**]
""")
    request = b"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 404  # the final answer, without inviting the body first
    assert b"100 Continue" not in reply.data
    assert reply.closed  # the unread body must not be parsed as a next request
    assert upstream.hits == []


async def test_unsupported_expectation_is_417(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    request = b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: magic\r\n\r\nhello"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 417
    assert upstream.hits == []


async def test_pipelined_requests_answered_in_order(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    requests = (
        b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = await converse(gw.port, requests)
    responses = parse_responses(reply.data)
    assert [r.status for r in responses] == [200, 200, 200]
    assert [json.loads(r.body)["path"] for r in responses] == ["/p1", "/p2", "/p3"]
    assert json.loads(responses[1].body)["body_bytes"] == 3
    assert reply.closed


async def test_nothing_after_close_is_executed(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    last = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    requests = last + b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = await converse(gw.port, requests)
    assert [r.status for r in parse_responses(reply.data)] == [200]
    assert reply.closed
    assert [hit.raw_path for hit in upstream.hits] == ["/last"]


async def test_http_1_0_without_keep_alive_gets_a_response_and_close(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n")
    assert reply.data.startswith(b"HTTP/1.1 200 ")
    assert reply.closed
    assert echoed(reply.data)["path"] == "/old"


async def test_http_1_0_with_keep_alive_stays_open(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    first = b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    request = first + b"GET /b HTTP/1.0\r\nHost: x\r\n\r\n"
    reply = await converse(gw.port, request)
    responses = parse_responses(reply.data)
    assert [json.loads(r.body)["path"] for r in responses] == ["/a", "/b"]
    assert reply.closed


# -- CR/LF through path variables ----------------------------------------------------------------------------


def header_from_variable(upstream: Upstream) -> str:
    return f"""
routes:
  - id: v
    uri: {upstream.url}
    predicates:
      - Path=/v/{{x}}
    filters:
      - "AddRequestHeader=X-V, {{x}}"
"""


async def test_path_variable_lands_in_a_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(header_from_variable(upstream))
    reply = await converse(gw.port, b"GET /v/hello%20there HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(reply.data) == 200
    assert ["X-V", "hello there"] in echoed(reply.data)["headers"]


async def test_path_variable_cannot_inject_a_header(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(header_from_variable(upstream))
    for target in (b"/v/a%0D%0AX-Injected:%201", b"/v/a%0AX-Injected:%201", b"/v/a%0DX-Injected:%201"):
        request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        reply = await converse(gw.port, request)
        status = status_of(reply.data)
        assert status == 400 or status == 200, reply.data[:300]
        if status == 200:
            value = dict((n.lower(), v) for n, v in echoed(reply.data)["headers"])["x-v"]
            assert "\r" not in value and "\n" not in value
    for hit in upstream.hits:
        assert "X-Injected" not in hit.headers
        assert all("\r" not in v and "\n" not in v for v in hit.headers.values())


# -- issue 9, finding 3: chunk extensions are bounded --------------------------------------------------------


CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def recording_sink(outcomes: list[str], settled: asyncio.Event) -> web.Application:
    """An upstream that records whether each body it got was complete (and how long) or aborted."""

    async def sink(request: web.Request) -> web.Response:
        try:
            data = await request.read()
            outcomes.append(f"complete:{len(data)}")
        except Exception as exc:
            outcomes.append(f"aborted:{type(exc).__name__}")
            raise
        finally:
            settled.set()
        return web.Response(text="got it")

    return app_serving("/upload", sink, method="POST")


async def test_a_1_mib_chunk_extension_is_400(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    outcomes: list[str] = []
    settled = asyncio.Event()
    upstream = await start_upstream(recording_sink(outcomes, settled))
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, CHUNKED_HEAD + b"1;ext=" + b"e" * (1 << 20) + b"\r\nX\r\n0\r\n\r\n")
    assert status_of(reply.data) == 400, reply.data[:200]
    assert b"chunk" in reply.data
    if upstream.hits:
        await asyncio.wait_for(settled.wait(), SOCKET_GUARD)
    assert not any(outcome.startswith("complete") for outcome in outcomes), outcomes


async def test_a_trickled_chunk_extension_is_400_once_over_16_kib(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    outcomes: list[str] = []
    settled = asyncio.Event()
    upstream = await start_upstream(recording_sink(outcomes, settled))
    gw = await start_gateway(catch_all(upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    sent = 0
    try:
        writer.write(CHUNKED_HEAD + b"5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the head in a read of its own, most likely; the assertions hold either way
        writer.write(b"1;ext=")
        answer = asyncio.create_task(read_until_closed(reader))
        while not answer.done() and sent < (1 << 20):  # the bound on sent bytes is the guard
            writer.write(b"e" * 1024)
            await writer.drain()
            sent += 1024
            await asyncio.sleep(0.005)  # its own segment, most likely: a trickle
        data, closed = await answer
    finally:
        writer.close()
    assert status_of(data) == 400, data[:200]
    assert closed
    assert sent < 64 * 1024, "the extension was read far beyond its bound"
    if upstream.hits:
        await asyncio.wait_for(settled.wait(), SOCKET_GUARD)
    assert not any(outcome.startswith("complete") for outcome in outcomes), outcomes


async def test_chunk_extensions_within_the_bound_pass(upstream: Upstream, start_gateway: StartGateway) -> None:
    """Extensions up to 16 KiB each (the size Node allows), in reads of their own or many in one read."""
    gw = await start_gateway(catch_all(upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(CHUNKED_HEAD)
        await writer.drain()
        extension = b";e=" + b"v" * (16 * 1024 - 3)  # 16 KiB of extension, `;` included
        for part in (b"3" + extension[:8000], extension[8000:], b"\r\nabc\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)  # separate reads, most likely; the assertions hold either way
        writer.write(b"".join(b"2" + extension + b"\r\nde\r\n" for _ in range(40)) + b"0\r\n\r\n")
        await writer.drain()
        response = await read_response(reader)
    finally:
        writer.close()
    assert status_of(response) == 200, response[:200]
    assert echoed(response)["body_bytes"] == 3 + 40 * 2


class _ChunkedReader:
    """llhttp (httptools) reading one chunked request, wired to ChunkLines the way the server's protocol is, so a
    test decides exactly which bytes each read holds (a socket would split them as it likes)."""

    def __init__(self) -> None:
        self.body = StreamBody(None, lambda: None, lambda: None)
        self.lines: ChunkLines | None = None
        self.done = False
        self.parser = httptools.HttpRequestParser(self)

    def on_headers_complete(self) -> None:
        self.lines = ChunkLines(self.body)

    def on_body(self, data: bytes) -> None:
        self.body.feed(data)

    def on_chunk_header(self) -> None:
        assert self.lines is not None
        self.lines.on_line()

    def on_chunk_complete(self) -> None:
        assert self.lines is not None
        self.lines.on_end()

    def on_message_complete(self) -> None:
        self.done, self.lines = True, None

    def read(self, data: bytes) -> bool:
        """Parse one read; False when ChunkLines refuses it."""
        self.parser.feed_data(data)
        return self.lines is None or self.lines.account(data, 0, len(data))


def test_a_long_chunk_line_between_two_reads_that_both_end_a_line_is_refused() -> None:
    # The reviewer's case: the long line begins in a read where an earlier line ended, and ends in the next read.
    # Both reads end a chunk line, which used to restart the count in each: 400 KiB of extension passed.
    reader = _ChunkedReader()
    extension = b";e=" + b"v" * (200 * 1024)
    assert not (
        reader.read(CHUNKED_HEAD + b"5\r\nhello\r\n1" + extension) and reader.read(extension + b"\r\nX\r\n0\r\n\r\n")
    )
    assert not reader.done


def test_a_chunk_line_within_the_bound_passes_whatever_the_reads() -> None:
    extension = b";e=" + b"v" * (16 * 1024 - 3)  # 16 KiB of extension, `;` included: the most Node allows
    message = CHUNKED_HEAD + b"5\r\nhello\r\n3" + extension + b"\r\nabc\r\n2" + extension + b"\r\nde\r\n0\r\n\r\n"
    for cut in range(len(CHUNKED_HEAD) - 2, len(message), 997):
        for second in (cut + 1, cut + 8192, cut + 20000):
            reader = _ChunkedReader()
            assert all(reader.read(part) for part in (message[:cut], message[cut:second], message[second:]) if part)
            assert reader.done and reader.body.received == 10


async def test_chunk_extension_bytes_do_not_reset_the_body_idle_clock(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    """A trickle of extension bytes (well under the bound) is no body progress: 408 after body_idle."""
    outcomes: list[str] = []
    settled = asyncio.Event()
    upstream = await start_upstream(recording_sink(outcomes, settled))
    gw = await start_gateway(catch_all(upstream), quick(body_idle=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(CHUNKED_HEAD + b"5\r\nhello\r\n1;e=")
        answer = asyncio.create_task(read_until_closed(reader, 6 * SOCKET_GUARD))
        sent = 0
        while not answer.done() and sent < 400:  # 20 s of trickle, 40 times the body-idle timeout
            writer.write(b"v")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            sent += 1
            await asyncio.sleep(0.05)
        data, closed = await answer
    finally:
        writer.close()
    assert sent < 400, "the extension trickle kept the body alive"
    assert status_of(data) == 408, data[:200]
    assert closed

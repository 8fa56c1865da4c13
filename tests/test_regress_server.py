"""Regressions on the client side of the data path: pipelining, flow control of pipelined uploads, answers that
must survive an unfinished upload, bounded head memory, and requests that must stop a connection.

Real clients on raw sockets, the real gateway on 127.0.0.1, real upstreams (the demo echo app or raw servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.exchange import Exchange, Next, Response
from gateway.headers import Headers
from gateway.registry import Registry, load_registry
from gateway.server.wire import declared_length
from gateway.settings import Limits, Settings, Timeouts
from gateway.spec import ComponentConfig, FilterSpec
from tests.conftest import StartGateway, StartRaw, StartUpstream, Upstream, status_of
from tests.helpers import (
    ParsedResponse,
    barrier,
    catch_all,
    converse,
    echoed,
    one_route,
    parse_responses,
    read_until_closed,
    upstream_paths,
)

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement
MiB = 1 << 20


def get(path: str, *extra: str) -> bytes:
    return "".join([f"GET {path} HTTP/1.1\r\nHost: gw\r\n", *(f"{line}\r\n" for line in extra), "\r\n"]).encode()


async def read_response(reader: asyncio.StreamReader, guard: float = GUARD) -> ParsedResponse:
    """One Content-Length-framed response off a kept-alive connection; fails the test if none arrives."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), guard)
        response = parse_responses(head)[0]
        length = int(response.header("content-length") or 0)
        response.body = await asyncio.wait_for(reader.readexactly(length), guard)
    except (TimeoutError, asyncio.IncompleteReadError) as exc:
        raise AssertionError(f"no complete response on the connection: {exc!r}") from exc
    return response


def echoed_path(response: ParsedResponse) -> str:
    return str(echoed(b"HTTP/1.1 200 OK\r\n\r\n" + response.body)["path"])


# -- 1.3: pipelining -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [2, 4, 8])
async def test_a_pipelined_burst_then_one_more_request_are_all_answered(
    burst: int, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"".join(get(f"/p{i}") for i in range(burst)))  # one segment
        for i in range(burst):
            response = await read_response(reader)
            assert response.status == 200
            assert echoed_path(response) == f"/p{i}"
        writer.write(get("/after"))
        response = await read_response(reader)
        assert response.status == 200
        assert echoed_path(response) == "/after"
    finally:
        writer.close()


def post(path: str, body: bytes, *, chunked: bool = False) -> bytes:
    if chunked:
        framed = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        return f"POST {path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + framed
    return f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def test_more_pipelined_requests_than_the_queue_holds_are_all_answered_in_order(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    """Beyond limits.max_pipelined (32) the gateway stops reading instead of answering 400 (issue 9, finding 4)."""
    gw = await start_gateway(catch_all(upstream))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"".join(get(f"/p{i}") for i in range(100)))  # one write
        for i in range(100):
            response = await read_response(reader)
            assert response.status == 200, response
            assert echoed_path(response) == f"/p{i}"
    finally:
        writer.close()


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_pipelined_requests_with_bodies_beyond_a_small_queue_are_all_answered(
    limit: int, upstream: Upstream, start_gateway: StartGateway
) -> None:
    settings = Settings(limits=Limits(max_pipelined=limit))
    gw = await start_gateway(catch_all(upstream), settings)
    requests, expected = [], []
    for i in range(30):
        body = b"x" * (i * 37 % 300)
        kind = i % 3
        requests.append(get(f"/g{i}") if kind == 0 else post(f"/b{i}", body, chunked=kind == 2))
        expected.append((f"/g{i}", 0) if kind == 0 else (f"/b{i}", len(body)))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(b"".join(requests))
        for path, size in expected:
            response = await read_response(reader)
            assert response.status == 200, response
            seen = echoed(b"HTTP/1.1 200 OK\r\n\r\n" + response.body)
            assert (seen["path"], seen["body_bytes"]) == (path, size)
    finally:
        writer.close()


def blank_line_text(seed: int, size: int) -> bytes:
    """CRLF text with a blank line every few lines (so `\\r\\n\\r\\n` throughout), lines that look like a last
    chunk (`0`, `0;x=1`) or a whole request: what a multipart upload or a text file may hold."""
    lines = [b"y" * (seed % 90), b"", b"0", b"", b"0;x=1", b"", b"GET /smuggled HTTP/1.1", b"Host: gw", b"", b"10"]
    text = b"\r\n".join(lines[(seed + i) % len(lines)] for i in range(size // 8 + 1))
    return text[:size]


def chunked(path: str, body: bytes, sizes: tuple[int, ...], last: bytes = b"0\r\n\r\n") -> bytes:
    """A chunked POST of `body` in chunks of `sizes` (cycled), ending with `last` (the last chunk and trailers)."""
    framed, pos, i = [], 0, 0
    while pos < len(body):
        piece = body[pos : pos + sizes[i % len(sizes)]]
        framed.append(b"%x\r\n%b\r\n" % (len(piece), piece))
        pos, i = pos + len(piece), i + 1
    head = f"POST {path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    return head + b"".join(framed) + last


@pytest.mark.parametrize("limit", [1, 3, 32])
@pytest.mark.parametrize("fragment", [0, 4093], ids=["one-write", "fragments"])
async def test_pipelined_chunked_requests_with_blank_lines_in_their_bodies_are_answered_in_order(
    limit: int, fragment: int, upstream: Upstream, start_gateway: StartGateway
) -> None:
    # Body bytes that look like a message end or a head must never be taken for one, whatever the reads hold.
    gw = await start_gateway(catch_all(upstream), Settings(limits=Limits(max_pipelined=limit)))
    lasts = (b"0\r\n\r\n", b"0;ext=1\r\n\r\n", b"000\r\nX-Trailer: t\r\n\r\n")
    requests, expected = [], []
    for i in range(24):
        body = blank_line_text(i, (0, 5, 700, 40_000, 300_000)[i % 5])
        if i % 4 == 3:
            requests.append(get(f"/g{i}"))
            expected.append((f"/g{i}", b""))
        else:
            requests.append(chunked(f"/c{i}", body, ((1 << 12) + i, 16, 1 << 16), lasts[i % 3]))
            expected.append((f"/c{i}", body))
    stream = b"".join(requests)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        parts = [stream] if not fragment else [stream[p : p + fragment] for p in range(0, len(stream), fragment)]
        sender = asyncio.create_task(send_all(writer, parts))
        for path, body in expected:
            response = await read_response(reader)
            assert response.status == 200, response
            seen = echoed(b"HTTP/1.1 200 OK\r\n\r\n" + response.body)
            assert (seen["path"], seen["body_bytes"]) == (path, len(body))
            assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
        await asyncio.wait_for(sender, GUARD)
    finally:
        writer.close()


async def test_a_burst_behind_a_chunked_body_with_blank_lines_is_held_to_the_queue_limit(
    start_upstream: StartUpstream,
) -> None:
    # Body bytes go to llhttp whole where the message cannot end: the requests after its end must still be cut
    # one head at a time, and the rest held once the queue is full.
    opened = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        data = await request.read()
        if request.path == "/first":
            await opened.wait()
        return web.json_response({"path": request.path, "body_bytes": len(data)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    upstream = await start_upstream(app)
    gateway = Gateway(Settings(limits=Limits(max_pipelined=2)))
    gateway.load_text(catch_all(upstream), "test-routes.yaml")
    server = await gateway.start("127.0.0.1", 0)
    body = blank_line_text(2, 20_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(chunked("/first", body, (4096,)) + b"".join(get(f"/p{i}") for i in range(40)))
        async with asyncio.timeout(GUARD):
            while not any(proto.held for proto in server.connections):
                await asyncio.sleep(0.01)
        (proto,) = server.connections
        assert len(proto.queue) <= 3  # the limit, overshot by one request at most
        opened.set()
        for path, size in [("/first", len(body))] + [(f"/p{i}", 0) for i in range(40)]:
            response = await read_response(reader)
            seen = echoed(b"HTTP/1.1 200 OK\r\n\r\n" + response.body)
            assert (seen["path"], seen["body_bytes"]) == (path, size)
    finally:
        writer.close()
        await gateway.stop()


async def send_all(writer: asyncio.StreamWriter, parts: list[bytes]) -> None:
    for part in parts:
        writer.write(part)
        await writer.drain()


async def settle(progress: list[int], sender: asyncio.Task[None], quiet: float = 0.5) -> None:
    """Return once `sender` finished or `progress[0]` stopped growing for `quiet` s. A synchronisation point only:
    the assertions that follow hold whatever the moment, and a gateway that buffers without bound lets the sender
    finish, which no wait can hide."""
    last = -1
    async with asyncio.timeout(6 * GUARD):
        while not sender.done() and progress[0] != last:
            last = progress[0]
            await asyncio.sleep(quiet)


class GateConfig(ComponentConfig):
    pass


@dataclass
class Gate:
    """A request-side filter that takes its time (as an auth call may): nothing reads the body until `opened`."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        self.entered.set()
        await self.opened.wait()
        return await call_next(exchange)


@pytest.fixture
async def start_with() -> AsyncIterator[Callable[[str, Registry], Awaitable[int]]]:
    """Factory: a gateway on 127.0.0.1 whose registry holds test-only filters too; returns its port."""
    started: list[Gateway] = []

    async def start(routes: str, registry: Registry) -> int:
        gateway = Gateway(Settings(), registry)
        gateway.load_text(routes, "test-routes.yaml")
        started.append(gateway)
        return (await gateway.start("127.0.0.1", 0)).port

    yield start
    for gateway in started:
        await gateway.stop()


async def test_upload_pipelined_behind_a_slow_get_stays_flow_controlled(
    start_raw: StartRaw, start_with: Callable[[str, Registry], Awaitable[int]]
) -> None:
    size = 128 * MiB  # far above what every socket buffer on the way can hold, so only buffering can swallow it
    block = bytes(range(256)) * 4096
    get_release, sink_head, sink_release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    gate = Gate()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await get_release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslow\n")
        await writer.drain()
        await reader.read()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(v for n, _, v in (f.partition(b":") for f in head.split(b"\r\n")) if n == b"Content-Length"))
        sink_head.set()
        await sink_release.wait()
        digest, got = hashlib.sha256(), 0
        while got < length and (data := await reader.read(MiB)):
            digest.update(data)
            got += len(data)
        answer = f"{got} {digest.hexdigest()}".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(answer), answer))
        await writer.drain()
        await reader.read()

    base = load_registry()
    spec = FilterSpec(name="Gate", order=996, config=GateConfig, build=lambda c, ctx: gate, summary="", example={})
    registry = Registry({**base.filters, "Gate": spec}, base.predicates, {**base.origins, "Gate": "tests"})
    port = await start_with(
        f"""
routes:
  - id: slow
    uri: http://127.0.0.1:{await start_raw(slow)}
    predicates: [Path=/slow]
  - id: sink
    uri: http://127.0.0.1:{await start_raw(sink)}
    predicates: [Path=/sink]
    filters: [Gate]
""",
        registry,
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    progress = [0]

    async def upload() -> None:
        writer.write(get("/slow") + b"POST /sink HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
            progress[0] += len(block)

    sender = asyncio.create_task(upload())
    try:
        # Three stretches in which nothing takes the POST body: the gateway must hold back the client each time.
        await settle(progress, sender)  # 1. the GET ahead of it is still waiting for its upstream
        assert not sender.done(), "the gateway swallowed the upload queued behind a pending GET"
        get_release.set()
        assert await asyncio.wait_for(gate.entered.wait(), GUARD)
        await settle(progress, sender)  # 2. the GET was answered; the POST sits in a slow request filter
        assert not sender.done(), "after the GET was answered the gateway swallowed the upload nobody read"
        gate.opened.set()
        assert await asyncio.wait_for(sink_head.wait(), GUARD)
        await settle(progress, sender)  # 3. forwarded, but the upstream does not read the body yet
        assert not sender.done(), "the gateway swallowed the upload its upstream did not read"
        assert progress[0] < size
        sink_release.set()
        await asyncio.wait_for(sender, 6 * GUARD)
        first, second = await read_response(reader), await read_response(reader, 6 * GUARD)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)
    assert (first.status, first.body) == (200, b"slow\n")
    assert second.status == 200
    assert second.body == f"{size} {expected.hexdigest()}".encode()  # delivered whole and intact


# -- 1.4: pipelined requests before a malformed one, and a head we stopped reading ourselves -----------------------


async def test_requests_pipelined_before_a_malformed_one_are_answered(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, get("/one") + get("/two") + b"GARBAGE\r\n\r\n")
    responses = parse_responses(reply.data)
    assert [r.status for r in responses] == [200, 200, 400], reply.data[-300:]
    assert [echoed_path(r) for r in responses[:2]] == ["/one", "/two"]
    assert responses[2].header("connection") == "close"
    assert reply.closed


async def test_a_pipelined_head_is_not_timed_out_while_the_gateway_is_busy(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    async def answer(request: web.Request) -> web.Response:
        if request.path == "/1":
            await asyncio.sleep(2.0)  # longer than header_read: the third head waits for us, not for the client
        return web.Response(text=f"ok {request.path}\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    up = await start_upstream(app)
    gw = await start_gateway(catch_all(up), Settings(timeouts=Timeouts(header_read=1.0)))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        third = get("/3")
        writer.write(get("/1") + get("/2") + third[:20])
        await writer.drain()
        await asyncio.sleep(0.2)  # the client is prompt: the rest of the third head follows at once
        writer.write(third[20:])
        responses = [await read_response(reader) for _ in range(3)]
    finally:
        writer.close()
    assert [(r.status, r.body) for r in responses] == [(200, b"ok /1\n"), (200, b"ok /2\n"), (200, b"ok /3\n")]


# -- 1.5: an answer given while the client still uploads reaches the client -----------------------------------------

EARLY_ROUTES = """
routes:
  - id: only
    uri: no://op
    predicates: [Path=/only]
  - id: deny
    uri: no://op
    predicates: [Path=/deny/**]
    filters: [SetStatus=403]
"""


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/deny/x", 403)])
async def test_an_early_answer_survives_the_rest_of_the_upload(
    path: str, status: int, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(EARLY_ROUTES)
    block = b"x" * MiB
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        try:
            writer.write(f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {32 * MiB}\r\n\r\n".encode())
            with contextlib.suppress(ConnectionError):
                for _ in range(32):
                    writer.write(block)
                    await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
            except ConnectionResetError:
                pytest.fail("the connection was reset: the client never got to read the answer")
            assert status_of(head) == status
        finally:
            writer.close()


# -- 1.6: an oversized header value is refused without being held in memory --------------------------------------


async def test_a_huge_header_value_is_431_without_being_buffered(start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route("http://127.0.0.1:9", "[]"))
    block = b"a" * MiB
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    tracemalloc.start()  # the gateway runs in this process: its Python-level allocations are traced too
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: gw\r\nX-Long: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(16):
                writer.write(block)
                await writer.drain()
            writer.write(b"\r\n\r\n")
            await writer.drain()
        data, closed = await read_until_closed(reader, GUARD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        writer.close()
    assert status_of(data) == 431, data[:200]
    assert closed
    # A value held in full would be at least its 16 MiB; reading and discarding needs a few socket reads.
    assert peak < 6 * MiB, f"{peak / MiB:.1f} MiB allocated at the peak for a 16 MiB header value"


# -- 1.10: ';' path parameters ---------------------------------------------------------------------------------------


def deny_admin(upstream: Upstream, metadata: str = "{}") -> str:
    return f"""
routes:
  - id: deny-admin
    uri: no://op
    predicates: [Path=/admin/**]
    filters: [SetStatus=403]
  - id: all
    uri: {upstream.url}
    predicates: [Path=/**]
    metadata: {metadata}
"""


@pytest.mark.parametrize("path", ["/admin;jsessionid=x/secret", "/admin;/secret", "/admin;x=1", "/public/a;b/c"])
async def test_path_parameters_are_refused_by_default(
    path: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(deny_admin(upstream))
    reply = await converse(gw.port, get(path, "Connection: close"))
    assert status_of(reply.data) == 400, reply.data[:300]
    await barrier(gw.port, "/public/barrier")
    assert upstream_paths(upstream) == ["/public/barrier"], f"{path!r} reached the upstream"


async def test_a_route_allowing_path_parameters_forwards_them_unchanged(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(deny_admin(upstream, "{allow-path-parameters: true}"))
    reply = await converse(gw.port, get("/app;jsessionid=x/page", "Connection: close"))
    assert status_of(reply.data) == 200, reply.data[:300]
    assert echoed(reply.data)["path"] == "/app;jsessionid=x/page"
    assert upstream_paths(upstream) == ["/app;jsessionid=x/page"]


# -- 1.11 and Host: a refusal by the route closes the connection -------------------------------------------------


async def test_an_encoded_slash_refused_by_the_route_closes_the_connection(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(one_route(upstream.url, "[]", "[Path=/public/**]"))
    reply = await converse(gw.port, get("/public/a%2Fb") + get("/public/next"))
    assert [r.status for r in parse_responses(reply.data)] == [400], reply.data
    assert reply.closed
    await barrier(gw.port, "/public/barrier")
    assert upstream_paths(upstream) == ["/public/barrier"], "a request pipelined after the refused one was executed"


async def test_a_host_header_that_is_a_list_is_400(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    reply = await converse(gw.port, b"GET /x HTTP/1.1\r\nHost: a,b\r\n\r\n")
    assert status_of(reply.data) == 400, reply.data[:300]
    assert reply.closed
    await barrier(gw.port)
    assert upstream_paths(upstream) == ["/barrier"]


@pytest.mark.parametrize("value", ["²", "١٢", "12x", "", "1, 2"])
def test_a_content_length_that_is_not_ascii_digits_is_no_declared_length(value: str) -> None:
    """`str.isdigit` takes "²" and Arabic-Indic digits, which `int` then refuses: only ASCII digits are a length
    (a filter-set or odd header must not raise while the response is written)."""
    assert declared_length(Headers([("Content-Length", value)])) is None
    assert declared_length(Headers([("Content-Length", " 12 ")])) == 12

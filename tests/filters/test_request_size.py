"""RequestSize through real requests: declared and chunked bodies, SCG's message, DataSize units, config.

The chunked cases run against a raw upstream that records whether it received a complete body: once the limit is
crossed the upstream must see an aborted request, never a complete (or a silently shortened) one.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp
import pytest

from tests.conftest import StartGateway, StartRaw, Upstream
from tests.helpers import SOCKET_GUARD, config_issues, config_only_route, converse, fetch, one_route, parse_responses

MESSAGE = "Request size is larger than permissible limit. Request size is {} where permissible limit is {}"


@dataclass
class Received:
    """What one connection to the recording upstream delivered."""

    body_bytes: int = 0
    complete: bool = False


@dataclass
class Recorder:
    """A raw upstream that reads one chunked or Content-Length request body and notes whether it was complete."""

    connections: list[Received] = field(default_factory=list)
    finished: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = Received()
        self.connections.append(got)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            if "transfer-encoding: chunked" in head:
                await self._read_chunked(reader, got)
            else:
                length = int(head.split("content-length:")[1].split("\r\n")[0]) if "content-length:" in head else 0
                got.body_bytes = len(await reader.readexactly(length))
                got.complete = True
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ncomplete")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the gateway aborted the request: `complete` stays False
        finally:
            self.finished.put_nowait(got)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader, got: Received) -> None:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            got.body_bytes += len(await reader.readexactly(size + 2)) - 2
        await reader.readexactly(2)  # the empty trailer section after the last chunk
        got.complete = True

    async def next_finished(self) -> Received:
        return await asyncio.wait_for(self.finished.get(), SOCKET_GUARD)


def chunked_request(chunks: list[bytes]) -> bytes:
    head = b"POST /upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@pytest.fixture
async def recorder_route(start_raw: StartRaw) -> tuple[Recorder, str]:
    recorder = Recorder()
    port = await start_raw(recorder.handle)
    return recorder, f"http://127.0.0.1:{port}"


async def test_declared_length_within_limit(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[RequestSize=1000]"))
    reply = await fetch(gw, "/up", method="POST", data=b"x" * 1000)  # exactly the limit is allowed (SCG: >)
    assert reply.status == 200
    assert reply.seen()["body_bytes"] == 1000


async def test_declared_length_over_limit_never_reaches_the_upstream(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(one_route(upstream.url, "[RequestSize=1000]"))
    reply = await fetch(gw, "/up", method="POST", data=b"x" * 1001)
    assert reply.status == 413
    assert reply.headers.getall("errorMessage") == [MESSAGE.format("1.0 kB", "1.0 kB")]
    problem = json.loads(reply.body)
    assert (problem["status"], problem["detail"]) == (413, "request body of 1001 bytes exceeds the limit of 1000 bytes")
    assert upstream.hits == []


async def test_default_is_five_million_bytes(upstream: Upstream, start_gateway: StartGateway) -> None:
    # Only the head is sent: the answer must not wait for (or read) a body it is going to refuse.
    gw = await start_gateway(one_route(upstream.url, "[RequestSize]"))
    head = b"POST /up HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n"
    (response,) = parse_responses((await converse(gw.port, head % 5_000_001)).data)
    assert response.status == 413
    assert response.header("errormessage") == MESSAGE.format("5.0 MB", "5.0 MB")
    assert upstream.hits == []


async def test_no_100_continue_for_a_refused_body(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[RequestSize=10]"))
    raw = await converse(gw.port, b"PUT /up HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
    assert raw.data.startswith(b"HTTP/1.1 413 ")
    assert raw.closed
    assert upstream.hits == []


@pytest.mark.parametrize(
    ("size", "limit", "fits"),
    [("1KB", 1024, True), ("1KB", 1025, False), ("512KB", 512 << 10, True), ("512KB", (512 << 10) + 1, False)],
)
async def test_spring_data_size_units_are_binary(
    upstream: Upstream, start_gateway: StartGateway, size: str, limit: int, fits: bool
) -> None:
    gw = await start_gateway(one_route(upstream.url, f"[{{name: RequestSize, args: {{maxSize: {size}}}}}]"))
    reply = await fetch(gw, "/up", method="POST", data=b"x" * limit)
    assert reply.status == (200 if fits else 413)


async def test_chunked_within_limit_arrives_complete(
    recorder_route: tuple[Recorder, str], start_gateway: StartGateway
) -> None:
    recorder, uri = recorder_route
    gw = await start_gateway(one_route(uri, "[RequestSize=1000]"))
    (response,) = parse_responses((await converse(gw.port, chunked_request([b"a" * 400, b"b" * 600]))).data)
    assert (response.status, response.body) == (200, b"complete")
    assert await recorder.next_finished() == Received(body_bytes=1000, complete=True)


async def test_chunked_over_limit_is_cut_off_while_streaming(
    recorder_route: tuple[Recorder, str], start_gateway: StartGateway
) -> None:
    # SCG only compares Content-Length, so a chunked body passes it whole; here it is counted as it flows.
    recorder, uri = recorder_route
    gw = await start_gateway(one_route(uri, "[RequestSize=1000]"))
    raw = await converse(gw.port, chunked_request([b"a" * 400, b"b" * 400, b"c" * 400, b"d" * 400]))
    (response,) = parse_responses(raw.data)
    assert response.status == 413
    # How far past the limit the count got depends on how the bytes were split on the way in.
    message = response.header("errormessage") or ""
    assert message.startswith("Request size is larger than permissible limit. Request size is at least "), message
    assert message.endswith("where permissible limit is 1.0 kB"), message
    assert json.loads(response.body)["detail"].startswith("request body exceeds the limit of 1000 bytes (")
    got = await recorder.next_finished()
    assert not got.complete  # the upstream saw an aborted request
    assert got.body_bytes <= 800  # and never the chunk that crossed the limit
    assert len(recorder.connections) == 1


async def test_chunked_over_limit_through_a_streaming_client(
    recorder_route: tuple[Recorder, str], start_gateway: StartGateway
) -> None:
    recorder, uri = recorder_route
    gw = await start_gateway(one_route(uri, "[RequestSize=4KB]"))

    async def body() -> object:
        for _ in range(8):
            yield b"z" * 1024

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.post(gw.url("/up"), data=body()) as resp,
    ):
        assert resp.status == 413
        assert resp.headers["errorMessage"].endswith("where permissible limit is 4.1 kB")
    assert not (await recorder.next_finished()).complete


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("[RequestSize=0]", "greater than or equal to 1"),
        ("[RequestSize=-5]", "greater than or equal to 1"),
        ("[RequestSize=5XB]", "unknown unit 'XB'"),
        ("[RequestSize=5.5MB]", "not a size"),
        ("[RequestSize=MB]", "not a size"),
        ("[RequestSize=2TB]", "less than or equal to"),
        ("[{name: RequestSize, args: {maxSize: true}}]", "not a boolean"),
        ("[{name: RequestSize, args: {maxSize: [1]}}]", "integer"),
    ],
)
def test_invalid_max_size(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == "routes[0].filters[0].args.maxSize" and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RequestSize=1, 2"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: RequestSize, args: {maxSizes: 1}}]", "routes[0].filters[0].args.maxSizes", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues

"""How an upstream's message ends decides what the client gets: only a clean end may look like one.

A raw asyncio upstream writes a response in several TCP segments and then ends the connection with a FIN or a
reset. A close-delimited body ended by a FIN is complete; every other early end must reach the client as an
aborted response (a short Content-Length body, or a chunked body without its last chunk), never a complete one.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.conformance.client import GUARD, Conn, Truncated, iter_body, read_head, request
from tests.conformance.compare import HOST
from tests.conftest import StartGateway, StartRaw
from tests.helpers import one_route

PIECES = [b"first piece of the body\n", b"x" * 70000, b"\x00\xff binary \r\n too\n", b"last piece\n"]
BODY = b"".join(PIECES)


def _chunked(pieces: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%b\r\n" % (len(p), p) for p in pieces]


#: name: (response head, body segments, how the upstream ends the connection, whether the body is complete)
ENDINGS: dict[str, tuple[bytes, list[bytes], str, bool]] = {
    "close-delimited, FIN": (b"HTTP/1.1 200 OK\r\nContent-Type: x/y\r\n\r\n", PIECES, "fin", True),
    "close-delimited, reset": (b"HTTP/1.1 200 OK\r\nContent-Type: x/y\r\n\r\n", PIECES, "reset", False),
    "HTTP/1.0 close-delimited, FIN": (b"HTTP/1.0 200 OK\r\nContent-Type: x/y\r\n\r\n", PIECES, "fin", True),
    "short Content-Length, FIN": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(BODY) + 1),
        PIECES,
        "fin",
        False,
    ),
    "short Content-Length, reset": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(BODY) + 1),
        PIECES,
        "reset",
        False,
    ),
    "chunked without last chunk, FIN": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        _chunked(PIECES),
        "fin",
        False,
    ),
    "chunked cut inside a chunk, FIN": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        [*_chunked(PIECES[:-1]), b"%x\r\n%b" % (len(PIECES[-1]) + 5, PIECES[-1])],
        "fin",
        False,
    ),
}


@pytest.mark.parametrize("case", list(ENDINGS))
async def test_how_the_upstream_ends_decides_whether_the_body_is_complete(
    case: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    head, segments, ending, complete = ENDINGS[case]

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for segment in [head, *segments]:
            writer.write(segment)
            await writer.drain()
            await asyncio.sleep(0.01)  # separate segments; the outcome must not depend on how they coalesce
        if ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    gw = await start_gateway(one_route(f"http://127.0.0.1:{await start_raw(upstream)}", "[]"))
    received = b""
    async with Conn(gw.port) as conn:
        await conn.send(request("GET", "/x", HOST))
        async with asyncio.timeout(GUARD):
            response = await read_head(conn.reader)
            try:
                async for data in iter_body(conn.reader, response):
                    received += data
                ended = "complete"
            except Truncated:
                ended = "aborted"
    assert response.status == 200
    assert response.chunked or response.length is not None, "the gateway chose close-delimited framing"
    assert ended == ("complete" if complete else "aborted")
    if complete:
        assert received == BODY
    else:
        assert BODY.startswith(received)


@pytest.mark.parametrize("ending", ["complete", "cut"])
async def test_an_http_1_0_client_can_tell_a_cut_body_from_a_complete_one(
    ending: str, start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    """For an HTTP/1.0 client the body is close-delimited: only a reset, never a clean close, may end a body
    the upstream did not finish (RFC 9112 §8: an incomplete message must not look complete)."""
    chunks = _chunked(PIECES) if ending == "complete" else _chunked(PIECES[:-1])
    tail = [b"0\r\n\r\n"] if ending == "complete" else []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for segment in [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", *chunks, *tail]:
            writer.write(segment)
            await writer.drain()
            await asyncio.sleep(0.01)
        if ending == "cut":
            writer.close()  # a clean FIN in the middle of a chunked body: the response is incomplete
        else:
            await reader.read()

    gw = await start_gateway(one_route(f"http://127.0.0.1:{await start_raw(upstream)}", "[]"))
    async with Conn(gw.port) as conn:
        await conn.send(b"GET /x HTTP/1.0\r\nHost: gw.example\r\n\r\n")
        async with asyncio.timeout(GUARD):
            response = await read_head(conn.reader)
            assert response.length is None and not response.chunked  # close-delimited for HTTP/1.0
            received, outcome = b"", "clean close"
            try:
                while data := await conn.reader.read(1 << 16):
                    received += data
            except ConnectionResetError:
                outcome = "reset"
    if ending == "complete":
        assert (outcome, received) == ("clean close", BODY)
    else:
        assert outcome == "reset", f"a cut body of {len(received)} bytes ended with a clean close: it looks complete"
        assert BODY.startswith(received)

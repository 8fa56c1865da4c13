"""The aiohttp upstream of the conformance tests: the same behaviours the nginx and httpbin upstreams offer.

Bodies are deterministic (a fixed pattern, never random) so a test can compute the digest the client must see
without buffering anything.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Iterator

from aiohttp import web
from multidict import CIMultiDict

#: 251 is prime: the pattern never lines up with a power-of-two buffer, so a shifted or repeated slice shows.
PATTERN = bytes(range(251)) * 261
DOC = b"document body\n" * 100
ETAG = '"v1"'
GZIPPED = gzip.compress(b'{"compressed": true, "by": "aiohttp"}\n' * 50, mtime=0)
CUT_SENT = b"partial-body-" + b"p" * 1000


def pattern(size: int) -> Iterator[bytes]:
    """`size` bytes of PATTERN, in pieces of at most its length."""
    while size > 0:
        piece = PATTERN[: min(size, len(PATTERN))]
        size -= len(piece)
        yield piece


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern(size):
        digest.update(piece)
    return digest.hexdigest()


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def doc(request: web.Request) -> web.Response:
    return web.Response(body=DOC, content_type="text/plain")


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"X-After": "no content"})


async def not_modified(request: web.Request) -> web.Response:
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers={"ETag": ETAG, "Cache-Control": "max-age=60"})
    return web.Response(text="modifiable\n", headers={"ETag": ETAG, "Cache-Control": "max-age=60"})


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def multi(request: web.Request) -> web.Response:
    headers = CIMultiDict([("X-Multi", "one"), ("X-Other", "between"), ("X-Multi", "two"), ("Set-Cookie", "a=1")])
    headers.add("Set-Cookie", "b=2; Path=/")
    return web.Response(text="multi\n", headers=headers)


async def echo(request: web.Request) -> web.Response:
    """The request body back, as received (aiohttp reads it; the gateway already answered any 100-continue)."""
    return web.Response(body=await request.read(), content_type="application/octet-stream")


async def stream(request: web.Request) -> web.StreamResponse:
    """`/stream?n=&size=`: n writes of `size` pattern bytes each, chunked (no Content-Length)."""
    count, size = int(request.query.get("n", "20")), int(request.query.get("size", "1000"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for index in range(count):
        await response.write(PATTERN[index : index + size])
    await response.write_eof()
    return response


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(body=GZIPPED, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})


async def large(request: web.Request) -> web.StreamResponse:
    """`/large?size=&framing=length|chunked`: streamed from a generator, never held whole in memory."""
    size = int(request.query["size"])
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("framing") == "length":
        response.content_length = size
    await response.prepare(request)
    for piece in pattern(size):
        await response.write(piece)
    await response.write_eof()
    return response


async def digest(request: web.Request) -> web.Response:
    """The sha256 and size of the request body, hashed as it streams in."""
    hasher, size = hashlib.sha256(), 0
    async for data in request.content.iter_any():
        hasher.update(data)
        size += len(data)
    return web.json_response({"size": size, "sha256": hasher.hexdigest()})


async def drip(request: web.Request) -> web.StreamResponse:
    """`/drip?n=10`: one byte every 100 ms, with a Content-Length."""
    count = int(request.query.get("n", "10"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = count
    await response.prepare(request)
    for _ in range(count):
        await response.write(b"*")
        await asyncio.sleep(0.1)
    await response.write_eof()
    return response


async def cut(request: web.Request) -> web.StreamResponse:
    """`/cut?framing=length|chunked`: part of a body, then the upstream's connection closes under it."""
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("framing") == "length":
        response.content_length = len(CUT_SENT) * 10
    await response.prepare(request)
    await response.write(CUT_SENT)
    await asyncio.sleep(0.05)  # let the part leave before the close; the outcome does not depend on it
    assert request.transport is not None
    request.transport.close()
    return response


def conformance_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/doc", doc)
    app.router.add_get("/no-content", no_content)
    app.router.add_get("/not-modified", not_modified)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/multi", multi)
    app.router.add_post("/echo", echo)
    app.router.add_get("/stream", stream)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/large", large)
    app.router.add_post("/digest", digest)
    app.router.add_get("/drip", drip)
    app.router.add_get("/cut", cut)
    return app

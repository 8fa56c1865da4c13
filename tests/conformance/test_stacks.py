"""Framing behaviours every upstream stack must get through the gateway unchanged: aiohttp, nginx, httpbin/gunicorn.

Where an upstream's answer is deterministic, the proxied response is compared with the upstream's own answer to
the same request, field by field and byte by byte; the only differences allowed are the documented ones
(docs/routes.md "What the gateway changes"): hop-by-hop fields and framing are the gateway's, `X-Request-Id` is
added, and `Date` moves on between the two calls.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import Callable

from tests.conformance.client import GUARD, Conn, Reply, closed_after, fetch, read_head, request
from tests.conformance.compare import HOST, IGNORED, assert_transparent, direct_and_proxied
from tests.conformance.conftest import Stack, eventually
from tests.conftest import GatewayUnderTest


def marked(target: str, marker: str) -> str:
    return target + ("&" if "?" in target else "?") + f"conformance={marker}"


# -- pipelining ---------------------------------------------------------------------------------------------------


async def test_pipelined_requests_end_at_connection_close(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    marker = uuid.uuid4().hex
    (first, first_body), (second, second_body), (third, _) = stack.pipeline
    data = (
        request("GET", marked(first, f"{marker}-1"), HOST)
        + request("GET", marked(second, f"{marker}-2"), HOST, [("Connection", "close")])
        + request("GET", marked(third, f"{marker}-3"), HOST)
    )
    async with Conn(stack_gateway.port) as conn:
        await conn.send(data)  # all three in one write: the gateway reads them together
        replies = [await conn.reply(), await conn.reply()]
        after = await closed_after(conn.reader)
    assert [(r.status, r.body) for r in replies] == [(200, first_body), (200, second_body)]
    assert replies[1].head.get("connection") == "close"
    assert after == b"", "the gateway answered (or sent something) after the Connection: close response"
    # A request sent through the gateway afterwards has reached the upstream: so would have the third, had it run.
    barrier = await fetch(stack_gateway.port, "GET", marked(first, f"{marker}-barrier"), HOST)
    assert barrier.status == 200
    await eventually(lambda: stack.seen(f"{marker}-barrier"), "the barrier request reached the upstream")
    await eventually(lambda: stack.seen(f"{marker}-1") and stack.seen(f"{marker}-2"), "both requests ran")
    assert not stack.seen(f"{marker}-3"), "a request pipelined after Connection: close was executed"


# -- bodiless responses -------------------------------------------------------------------------------------------


async def test_head_keeps_content_length_and_the_connection(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    direct = await fetch(stack.port, "HEAD", stack.head, stack.authority)
    async with Conn(stack_gateway.port) as conn:
        await conn.send(request("HEAD", stack.head, HOST))
        head = await conn.reply("HEAD")
        # Any byte of a body after the HEAD answer would corrupt this next response on the same connection.
        await conn.send(request("GET", stack.head, HOST))
        get = await conn.reply()
    assert head.status == get.status == 200
    assert head.body == b""
    assert head.head.length is not None and head.head.length == get.head.length == len(get.body) > 0
    assert head.head.end_to_end(*IGNORED) == direct.head.end_to_end(*IGNORED)
    assert head.head.length == direct.head.length


async def test_204_and_304_end_at_their_head(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    etag = (await fetch(stack.port, "GET", stack.etag, stack.authority)).head.get("etag")
    assert etag is not None
    conditional = [("If-None-Match", etag)]
    direct_304 = await fetch(stack.port, "GET", stack.etag, stack.authority, conditional)
    async with Conn(stack_gateway.port) as conn:
        await conn.send(request("GET", stack.no_content, HOST))
        no_content = await conn.reply()
        await conn.send(request("GET", stack.etag, HOST, conditional))
        not_modified = await conn.reply()
        await conn.send(request("GET", stack.head, HOST))
        after = await conn.reply()  # parsed right after the two empty messages: nothing followed them
    assert (no_content.status, not_modified.status, after.status) == (204, 304, 200)
    assert no_content.head.get("transfer-encoding") is None and no_content.head.get("content-length") is None
    assert not_modified.head.get("transfer-encoding") is None
    assert not_modified.head.end_to_end(*IGNORED) == direct_304.head.end_to_end(*IGNORED)
    assert not_modified.head.get("etag") == etag
    assert after.head.length == len(after.body) > 0


# -- passed through as the upstream sent it -----------------------------------------------------------------------


async def test_redirect_passes_through(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    direct, proxied = await direct_and_proxied(stack, stack_gateway, "GET", stack.redirect)
    assert 300 <= direct.status < 400 and direct.head.get("location")
    assert_transparent(direct, proxied)


async def test_repeated_response_headers_keep_their_order(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    target, name, values = stack.repeated
    direct, proxied = await direct_and_proxied(stack, stack_gateway, "GET", target)
    assert direct.head.get_all(name) == values
    assert proxied.head.get_all(name) == values
    assert_transparent(direct, proxied)


async def test_chunked_response_is_byte_exact(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    target, headers = stack.chunked
    direct, proxied = await direct_and_proxied(stack, stack_gateway, "GET", target, headers)
    assert direct.head.chunked and len(direct.body) > 0
    assert_transparent(direct, proxied)


async def test_gzip_content_is_not_decoded(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    target, headers, deterministic = stack.gzip
    direct, proxied = await direct_and_proxied(stack, stack_gateway, "GET", target, headers)
    assert direct.head.get("content-encoding") == proxied.head.get("content-encoding") == "gzip"
    assert proxied.body[:2] == b"\x1f\x8b"
    gzip.decompress(proxied.body)  # whole and valid, as the upstream compressed it
    if deterministic:
        assert_transparent(direct, proxied)
    else:  # httpbin's body echoes the request, which differs; the framing still must not
        assert proxied.head.length == len(proxied.body) and direct.head.length == len(direct.body)
        assert json.loads(gzip.decompress(proxied.body))["gzipped"] is True


# -- Expect: 100-continue -----------------------------------------------------------------------------------------

#: Where each stack takes a POST, and how to find the request body in its answer (nginx only answers).
ECHO: dict[str, tuple[str, Callable[[Reply], bytes] | None]] = {
    "aiohttp": ("/echo", lambda reply: reply.body),
    "httpbin": ("/post", lambda reply: str(json.loads(reply.body)["data"]).encode()),
    "nginx": ("/ok", None),
}


async def test_expect_100_continue(stack: Stack, stack_gateway: GatewayUnderTest) -> None:
    target, echoed = ECHO[stack.name]
    body = b"sent only after the interim 100 response\n" * 50
    head = request("POST", target, HOST, [("Content-Type", "text/plain"), ("Expect", "100-continue")], body)
    head = head[: len(head) - len(body)]
    async with Conn(stack_gateway.port) as conn:
        await conn.send(head)
        async with asyncio.timeout(GUARD):
            interim = await read_head(conn.reader, informational=True)
        assert interim.status == 100, "the client was not invited to send its body"
        await conn.send(body)
        reply = await conn.reply()
    assert reply.status == 200
    if echoed is None:
        assert reply.body == b"ok\n"
        return
    assert echoed(reply) == body
    if stack.name == "httpbin":  # the expectation was the gateway's to meet, not the upstream's
        assert "Expect" not in json.loads(reply.body)["headers"]

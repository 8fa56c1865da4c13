"""Comparing a response through the gateway with the upstream's own answer to the same request."""

from __future__ import annotations

from tests.conformance.client import Reply, assert_only_own_hop_fields, fetch
from tests.conformance.conftest import Stack
from tests.conftest import GatewayUnderTest

HOST = "gw.example"
IGNORED = ("Date", "X-Request-Id")


async def direct_and_proxied(
    stack: Stack, gw: GatewayUnderTest, method: str, target: str, headers: list[tuple[str, str]] | None = None
) -> tuple[Reply, Reply]:
    """The upstream's own answer (asked with the Host the gateway sends it) and the answer through the gateway."""
    direct = await fetch(stack.port, method, target, stack.authority, headers or [])
    proxied = await fetch(gw.port, method, target, HOST, headers or [])
    return direct, proxied


def assert_transparent(direct: Reply, proxied: Reply) -> None:
    """Status line, end-to-end fields in order, body bytes and the kind of framing as the upstream sent them."""
    assert (proxied.status, proxied.head.reason) == (direct.status, direct.head.reason)
    assert proxied.head.end_to_end(*IGNORED) == direct.head.end_to_end(*IGNORED)
    assert proxied.body == direct.body
    assert proxied.head.length == direct.head.length  # a declared length is kept, never replaced by chunking
    assert proxied.head.chunked == direct.head.chunked
    assert proxied.head.get("x-request-id")  # the one field the gateway adds to every response
    assert_only_own_hop_fields(proxied.head)

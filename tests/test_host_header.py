"""The Host header grammar of the edge: DNS names and IP literals only, one port; anything else is a 400."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway, Upstream, raw_exchange, status_of


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.org", 200),
        ("api.example.org:8443", 200),
        ("[::1]:8080", 200),
        ("10.0.0.1", 200),
        ("a,b", 400),
        ("[1.2.3.4]", 400),
        (":80", 400),
        ("a..b", 400),
        ("-a.example", 400),
        ("a.example:0", 400),
        ("a.example:70000", 400),
        ("a%2eexample", 400),
        ("user@a.example", 400),
    ],
)
async def test_host_grammar(upstream: Upstream, start_gateway: StartGateway, host: str, status: int) -> None:
    gw = await start_gateway(f"routes: [{{id: r, uri: '{upstream.url}', predicates: ['Path=/**']}}]")
    reply = await raw_exchange(gw.port, f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert status_of(reply) == status
    assert len(upstream.hits) == (1 if status == 200 else 0)

"""End to end, the request an upstream receives: generated client requests through the real server and forwarder.

A raw client sends generated fields (hop-by-hop ones, Connection-named ones, forwarding headers a client may not
set, names with underscores among them) and a body framed by Content-Length or chunked; a raw upstream reads
what arrives with llhttp. What it gets must be the client's request with exactly the documented changes
(docs/routes.md "What the gateway changes"), every other field in order, the body byte for byte.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance import strategies as s
from tests.conformance.client import Conn
from tests.conformance.llhttp import ParsedRequest
from tests.conftest import StartGateway, StartRaw
from tests.helpers import one_route

PROPERTY = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-prefix"}
) | {"x-real-ip"}
#: Not generated: framing and Expect change how the request is read, Host and Upgrade are other tests' business,
#: and the trace context is rewritten by rules of its own (observability).
NOT_GENERATED = frozenset(
    {"host", "content-length", "transfer-encoding", "expect", "upgrade", "traceparent", "tracestate"}
)
HOP_NAMES = st.sampled_from(["Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Proxy-Authorization"])
CLIENT_ONLY = st.sampled_from(["X-Forwarded-For", "x-forwarded-host", "Forwarded", "X-Real-IP", "X-Forwarded-Port"])
UNDERSCORED = st.from_regex(r"[A-Za-z]{1,6}_[A-Za-z_]{1,6}", fullmatch=True)


@dataclass
class Captured:
    method: str
    request: ParsedRequest


@dataclass
class CapturingUpstream:
    """Reads each request with llhttp, records it under its path, answers 200 with no body (keep-alive)."""

    seen: dict[str, Captured] = field(default_factory=dict)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            parsed = ParsedRequest()
            parser = httptools.HttpRequestParser(parsed)
            while not parsed.complete:
                data = await reader.read(65536)
                if not data:
                    return
                parser.feed_data(data)
            path = parsed.url.decode().partition("?")[0]
            self.seen[path] = Captured(parser.get_method().decode(), parsed)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()


@pytest.fixture
async def capturing(start_raw: StartRaw, start_gateway: StartGateway) -> tuple[CapturingUpstream, int, int]:
    upstream = CapturingUpstream()
    port = await start_raw(upstream.serve)
    gw = await start_gateway(one_route(f"http://127.0.0.1:{port}", "[]"))
    return upstream, port, gw.port


@dataclass
class ClientRequest:
    method: str
    query: str
    fields: list[tuple[str, str]]
    body: bytes | None
    chunks: list[bytes] | None  # sent chunked when set


@st.composite
def client_requests(draw: st.DrawFn) -> ClientRequest:
    names = st.one_of(s.field_names, HOP_NAMES, CLIENT_ONLY, UNDERSCORED).filter(
        lambda n: n.lower() not in NOT_GENERATED
    )
    fields = draw(st.lists(st.tuples(names, s.field_values()), max_size=16))
    if draw(st.booleans()):  # a Connection field naming some of them (and options), somewhere among them
        named = draw(st.lists(st.sampled_from([n for n, _ in fields] or ["X-Absent"]), max_size=3))
        options = draw(st.lists(st.sampled_from(["keep-alive", "close", "X-Absent"]), max_size=2))
        tokens = [*named, *options] or ["keep-alive"]
        fields.insert(draw(st.integers(0, len(fields))), ("Connection", ", ".join(tokens)))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]))
    body = draw(st.one_of(st.none(), st.binary(max_size=2000))) if method not in ("GET", "HEAD") else None
    chunks = None
    if body is not None and draw(st.booleans()):
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body))), max_size=5))))
        bounds = [0, *[c for c in cuts if c < len(body)], len(body)]
        chunks = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return ClientRequest(method, draw(s.queries), fields, body, chunks)


def wire(request: ClientRequest, target: str) -> bytes:
    lines = [f"{request.method} {target} HTTP/1.1", "Host: gw.example", *(f"{n}: {v}" for n, v in request.fields)]
    if request.chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in request.chunks) + b"0\r\n\r\n"
    elif request.body is not None:
        lines.append(f"Content-Length: {len(request.body)}")
        payload = request.body
    else:
        payload = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def expected_names_and_values(request: ClientRequest, authority: str) -> list[tuple[str, str | None]]:
    """The fields the upstream must get, in order; None stands for a value the gateway generates (ids)."""
    named = {t.strip().lower() for n, v in request.fields if n.lower() == "connection" for t in v.split(",")}
    dropped = s.HOP_BY_HOP | FORWARDING | (named - {"host"})
    kept: list[tuple[str, str | None]] = [("Host", authority)]
    for name, value in request.fields:
        if name.lower() in dropped or "_" in name:
            continue
        if name.lower() == "x-request-id":  # the gateway's id is written over the client's, in its place
            if any(n.lower() == "x-request-id" for n, _ in kept):
                continue
            kept.append(("X-Request-Id", None))
            continue
        kept.append((name, value))
    kept.append(("traceparent", None))  # the client sent none: a new trace starts here
    kept += [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "gw.example"),
        ("X-Forwarded-Port", "80"),
        ("Forwarded", 'for=127.0.0.1;proto=http;host="gw.example"'),
    ]
    if not any(n.lower() == "x-request-id" for n, _ in kept):
        kept.append(("X-Request-Id", None))
    if request.chunks is not None:
        kept.append(("Transfer-Encoding", "chunked"))
    elif request.body is not None or request.method in ("POST", "PUT", "PATCH"):
        # A declared empty body keeps its Content-Length: 0, and the methods that carry one always get it.
        kept.append(("Content-Length", str(len(request.body or b""))))
    return kept


@PROPERTY
@given(client_requests())
async def test_the_upstream_gets_the_client_request_with_only_the_documented_changes(
    capturing: tuple[CapturingUpstream, int, int], request: ClientRequest
) -> None:
    upstream, upstream_port, gw_port = capturing
    path = f"/p/{len(upstream.seen)}"
    target = path + (f"?{request.query}" if request.query else "")
    async with Conn(gw_port) as conn, asyncio.timeout(30):
        await conn.send(wire(request, target))
        reply = await conn.reply(request.method)
    assert reply.status == 200, reply.body
    got = upstream.seen.pop(path)
    assert got.method == request.method
    assert got.request.url.decode() == target
    expected = expected_names_and_values(request, f"127.0.0.1:{upstream_port}")
    assert [n for n, _ in got.request.fields] == [n for n, _ in expected]
    for (name, value), (_, sent) in zip(expected, got.request.fields, strict=True):
        if value is not None:
            assert sent == value, name
    assert got.request.body == (request.body or b"")

"""The smuggling probe matrix (reliability.md §1) and one canonical path versus authorisation, raw sockets.

Every probe is answered with a 4xx, the gateway closes the connection, the upstream never sees the request,
and a valid request pipelined right behind the bad one on the same connection is never executed.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import StartGateway, StartUpstream, Upstream, status_of
from tests.helpers import barrier, catch_all, converse, echoed, header_names, parse_responses, upstream_paths

# -- the probe matrix ----------------------------------------------------------------------------------------

H = b"Host: gw.example\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
LAST = b"0\r\n\r\n"
CHUNKED_HELLO = b"5;ext=1\r\nhello\r\n" + LAST


def post(fields: bytes, body: bytes, version: bytes = b"1.1") -> bytes:
    return b"POST /p HTTP/" + version + b"\r\n" + H + fields + b"\r\n" + body


def get(target: bytes, fields: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + H + fields + b"\r\n"


PROBES: dict[str, bytes] = {
    "cl-and-te-chunked": post(b"Content-Length: 5\r\n" + CHUNKED, LAST),
    "two-differing-cl": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "cl-plus-sign": post(b"Content-Length: +6\r\n", b"hello!"),
    "cl-list-6-6": post(b"Content-Length: 6, 6\r\n", b"hello!"),
    "te-space-before-colon": post(b"Transfer-Encoding : chunked\r\n", LAST),
    "te-xchunked": post(b"Transfer-Encoding: xchunked\r\n", LAST),
    "te-chunked-identity": post(b"Transfer-Encoding: chunked, identity\r\n", LAST),
    "te-vertical-tab": post(b"Transfer-Encoding: \x0bchunked\r\n", LAST),
    "te-chunked-on-http-1.0": post(CHUNKED, LAST, version=b"1.0"),
    "chunk-size-0x5": post(CHUNKED, b"0x5\r\nhello\r\n" + LAST),
    "lf-in-chunk-extension": post(CHUNKED, b"5;a\nb\r\nhello\r\n" + LAST),
    "duplicate-host": get(b"/p", b"Host: other.example\r\n"),
    "http-1.1-without-host": b"GET /p HTTP/1.1\r\nX-A: 1\r\n\r\n",
    "absolute-form-other-host": get(b"http://evil.example/x"),
    "nul-in-path": get(b"/p\x00x"),
    "nul-in-header-value": get(b"/p", b"X-A: a\x00b\r\n"),
    "bare-cr-in-value": get(b"/p", b"X-A: a\rb\r\n"),
    "space-in-uri": get(b"/p x"),
    "obs-fold": get(b"/p", b"X-A: a\r\n  folded\r\n"),
    # Beyond the matrix: other framing and target defects of the same class.
    "te-gzip-chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", LAST),
    "te-twice": post(CHUNKED + CHUNKED, LAST),
    "content-length-in-trailer": post(CHUNKED, b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
    "climbs-above-root": get(b"/../../etc/passwd"),
    "lf-line-endings": b"GET /p HTTP/1.1\nHost: gw.example\n\n",
    "http-0.9": b"GET /p\r\n\r\n",
    "fragment-in-target": get(b"/p#frag"),
    "invalid-host": b"GET /p HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
    "upgrade-with-body": post(b"Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n", b"hello"),
}
#: Where a status other than 400 is the more precise answer (RFC 9112 §6.1: unknown transfer coding → 501).
OTHER_STATUS: dict[str, set[int]] = {"te-gzip-chunked": {400, 501}}


@pytest.mark.parametrize("name", list(PROBES))
async def test_probe_is_refused_closed_and_never_forwarded(
    name: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    follow = f"GET /never-{name} HTTP/1.1\r\nHost: gw.example\r\n\r\n".encode()
    reply = await converse(gw.port, PROBES[name] + follow)
    assert status_of(reply.data) in OTHER_STATUS.get(name, {400}), reply.data[:300]
    assert reply.closed, "the gateway must close the connection after refusing a request"
    assert len(parse_responses(reply.data)) == 1, "the pipelined request behind the probe is not answered"
    await barrier(gw.port)
    assert upstream_paths(upstream) == ["/barrier"], "the probe or the request behind it went upstream"


async def test_well_formed_shapes_are_forwarded(upstream: Upstream, start_gateway: StartGateway) -> None:
    """Control: the well-formed versions of the probes pass, so the refusals above are about the defect."""
    gw = await start_gateway(catch_all(upstream))
    chunked = b"POST /ok1 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKED_HELLO
    sized = b"POST /ok2 HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n\r\nhello!"
    absolute = b"GET http://gw.example/ok3 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    reply = await converse(gw.port, chunked + sized + absolute)
    responses = parse_responses(reply.data)
    assert [r.status for r in responses] == [200, 200, 200], reply.data[:500]
    assert [json.loads(r.body)["body_bytes"] for r in responses] == [5, 6, 0]
    assert upstream_paths(upstream) == ["/ok1", "/ok2", "/ok3"]


async def test_connection_named_field_not_forwarded(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(catch_all(upstream))
    fields = b"Connection: close, X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n"
    request = b"GET /secret HTTP/1.1\r\n" + H + fields
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    names = header_names(echoed(reply.data))
    assert "x-secret" not in names
    assert "x-kept" in names
    assert all("x-secret" not in name.lower() for name in upstream.hits[0].headers)


@pytest.mark.parametrize(
    "request_line", [b"CONNECT 127.0.0.1:22 HTTP/1.1", b"TRACE / HTTP/1.1", b"TRACE /secret HTTP/1.1"]
)
async def test_connect_and_trace_are_refused(
    request_line: bytes, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(catch_all(upstream))
    follow = b"GET /never-after-method HTTP/1.1\r\n" + H + b"\r\n"
    reply = await converse(gw.port, request_line + b"\r\nHost: 127.0.0.1:22\r\n\r\n" + follow)
    assert status_of(reply.data) == 405
    assert reply.closed
    await barrier(gw.port)
    assert upstream_paths(upstream) == ["/barrier"]


# -- one canonical path for matching and forwarding ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/anything/../get", "/anything/%2e%2e/get", "/anything/./../get", "//get"])
async def test_dot_segments_are_matched_and_forwarded_canonically(
    path: str, start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    get_side = await start_upstream()
    anything_side = await start_upstream()
    gw = await start_gateway(f"""
routes:
  - id: anything
    uri: {anything_side.url}
    predicates: [Path=/anything/**]
  - id: get
    uri: {get_side.url}
    predicates: [Path=/get]
""")
    reply = await converse(gw.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(reply.data) == 200
    assert echoed(reply.data)["path"] == "/get"  # the path the upstream saw equals the matched one
    assert upstream_paths(get_side) == ["/get"]
    assert anything_side.hits == []


def authz_routes(upstream: Upstream) -> str:
    return f"""
routes:
  - id: public
    uri: {upstream.url}
    predicates: [Path=/public/**]
  - id: admin-denied
    uri: no://op
    predicates: [Path=/admin/**]
    filters: [SetStatus=403]
  - id: files
    uri: {upstream.url}
    predicates: [Path=/files/**]
    metadata:
      allow-encoded: ["%2F"]
"""


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/admin/x", {403}),
        ("/public/../admin/x", {403}),
        ("/public/%2e%2e/admin/x", {403}),
        ("/public/%2E%2E/admin/x", {403}),
        ("/public/%2Fadmin", {400}),
        ("/public/%2fadmin", {400}),
        ("/public/..%2Fadmin/x", {400}),
        ("/public/%5Cadmin", {400}),
        ("/public/%5cadmin", {400}),
        ("//admin/x", {403}),
        ("/public//../admin/x", {403}),
        ("/public/..;/admin/x", {400}),
        ("/public/%2e%2e;/admin/x", {400}),
        ("/admin%00", {400, 404}),
        ("/public/%00/../admin/x", {400}),
        ("/%61dmin/x", {403}),
        ("/public/..\\admin/x", {400}),
    ],
)
async def test_path_spellings_never_reach_an_admin_path(
    path: str, statuses: set[int], upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(authz_routes(upstream))
    reply = await converse(gw.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(reply.data) in statuses, reply.data[:300]
    await barrier(gw.port, "/public/barrier")
    assert upstream_paths(upstream) == ["/public/barrier"], f"{path!r} reached the upstream"


async def test_public_paths_still_pass(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(authz_routes(upstream))
    request = b"GET /public/a/./b/../c%41 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    assert echoed(reply.data)["path"] == "/public/a/cA"


async def test_encoded_slash_is_refused_by_default(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(authz_routes(upstream))
    reply = await converse(gw.port, b"GET /public/a%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(reply.data) == 400
    assert parse_responses(reply.data)[0].header("content-type") == "application/problem+json"
    await barrier(gw.port, "/public/barrier")
    assert upstream_paths(upstream) == ["/public/barrier"]


@pytest.mark.parametrize("spelling", ["%2F", "%2f"])
async def test_encoded_slash_is_forwarded_encoded_where_the_route_allows_it(
    spelling: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(authz_routes(upstream))
    request = f"GET /files/a{spelling}b/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    reply = await converse(gw.port, request)
    assert status_of(reply.data) == 200
    assert echoed(reply.data)["path"] == "/files/a%2Fb/c"
    assert upstream_paths(upstream) == ["/files/a%2Fb/c"]


async def test_allowing_encoded_slash_does_not_allow_other_escapes(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(authz_routes(upstream))
    for path in (b"/files/a%5Cb", b"/files/a%00b"):
        reply = await converse(gw.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(reply.data) == 400
    await barrier(gw.port, "/public/barrier")
    assert upstream_paths(upstream) == ["/public/barrier"]

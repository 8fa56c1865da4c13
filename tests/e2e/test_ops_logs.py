"""Access log, request ids and trace context of the whole `sluicegate run` process tree (issue 4, "Access log").

Each stdout line is one JSON object with the documented fields; X-Request-Id is returned to the client and forwarded
to the upstream (a client's own id is kept only from a trusted proxy); a valid traceparent is forwarded unchanged,
an absent or invalid one is replaced by a valid generated one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import StartUpstream, Upstream
from tests.e2e.ops_helpers import ACCESS_LOG_FIELDS, GUARD, TRACEPARENT, GatewayProcess, routes_yaml, run_gateway

USER_AGENT = "ops-log-test/1.0"
VALID_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
INVALID_TRACEPARENTS = ("00-xyz-invalid-01", "00-00000000000000000000000000000000-b7ad6b7169203331-01")
CLIENT_ID = "client-chosen-id-42"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def start_echo(start_upstream: StartUpstream) -> Upstream:
    """Answers with the request headers it received (lower-case names) and the size of the body."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"headers": {k.lower(): v for k, v in request.headers.items()}, "size": len(body)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return await start_upstream(app)


def echo_routes(upstream: Upstream) -> str:
    return routes_yaml({"id": "echo", "uri": upstream.url, "predicates": ["Path=/echo/**"]})


@dataclass
class Sent:
    status: int
    request_id: str
    upstream_headers: dict[str, str]  # empty when no upstream was reached
    body_size: int


async def send(
    gw: GatewayProcess, method: str, path: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> Sent:
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session,
        session.request(method, gw.url(path), headers=all_headers, data=data) as resp,
    ):
        body = await resp.read()
        echoed: dict[str, Any] = await resp.json() if resp.status == 200 else {"headers": {}}
        return Sent(resp.status, resp.headers.get("X-Request-Id", ""), echoed["headers"], len(body))


def trace_of(traceparent: str) -> str:
    match = TRACEPARENT.fullmatch(traceparent)
    assert match is not None, f"not a valid traceparent: {traceparent!r}"
    trace, parent, _ = match.groups()
    assert trace != "0" * 32 and parent != "0" * 16, traceparent
    return trace


def by_request_id(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = {}
    for entry in log:
        missing = ACCESS_LOG_FIELDS - entry.keys()
        assert not missing, f"access-log line without {sorted(missing)}: {entry}"
        assert entry["request_id"] not in lines, f"two lines for request {entry['request_id']}"
        lines[entry["request_id"]] = entry
    return lines


async def test_access_log_lines_and_ids_from_an_untrusted_client(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_echo(start_upstream)
    async with run_gateway(tmp_path, echo_routes(upstream), "--workers", "2") as gw:
        plain = await send(gw, "GET", "/echo/plain?x=1")
        chosen = await send(gw, "GET", "/echo/client-id", {"X-Request-Id": CLIENT_ID})
        traced = await send(gw, "GET", "/echo/traced", {"traceparent": VALID_TRACEPARENT, "tracestate": "congo=t61"})
        invalid = [await send(gw, "GET", "/echo/bad-trace", {"traceparent": t}) for t in INVALID_TRACEPARENTS]
        upload = await send(gw, "POST", "/echo/upload", data=b"u" * 123)
        unmatched = await send(gw, "GET", "/nowhere")
        code = await gw.stop()
    assert code == 0
    every = [plain, chosen, traced, *invalid, upload]
    # The id is returned to the client and forwarded to the upstream; a client's own id is not trusted.
    for sent in [*every, unmatched]:
        assert sent.request_id, sent
    for sent in every:
        assert sent.status == 200
        assert sent.upstream_headers["x-request-id"] == sent.request_id
    assert chosen.request_id != CLIENT_ID
    assert len({s.request_id for s in [*every, unmatched]}) == len(every) + 1
    # Trace context: a valid traceparent goes on unchanged (with its tracestate), others are replaced.
    assert traced.upstream_headers["traceparent"] == VALID_TRACEPARENT
    assert traced.upstream_headers.get("tracestate") == "congo=t61"
    trace_of(plain.upstream_headers["traceparent"])
    for sent, given in zip(invalid, INVALID_TRACEPARENTS, strict=True):
        assert sent.upstream_headers["traceparent"] != given
        trace_of(sent.upstream_headers["traceparent"])
    assert unmatched.status == 404

    lines = by_request_id(gw.access_log())
    assert set(lines) == {s.request_id for s in [*every, unmatched]}
    first = lines[plain.request_id]
    assert TIME.fullmatch(first["time"]), first
    assert first["trace_id"] == trace_of(plain.upstream_headers["traceparent"])
    assert first["client"] == "127.0.0.1"
    assert (first["method"], first["path"], first["route"], first["status"]) == ("GET", "/echo/plain", "echo", 200)
    assert (first["upstream"], first["attempts"]) == (f"127.0.0.1:{upstream.port}", 1)
    assert first["user_agent"] == USER_AGENT
    assert first["bytes_in"] == 0
    assert isinstance(first["bytes_out"], int) and first["bytes_out"] > plain.body_size
    assert isinstance(first["duration_ms"], int | float) and isinstance(first["upstream_ms"], int | float)
    assert 0 <= first["upstream_ms"] <= first["duration_ms"]
    assert lines[traced.request_id]["trace_id"] == VALID_TRACEPARENT.split("-")[1]
    for sent in invalid:
        assert lines[sent.request_id]["trace_id"] == trace_of(sent.upstream_headers["traceparent"])
    posted = lines[upload.request_id]
    assert (posted["method"], posted["bytes_in"], upload.upstream_headers["content-length"]) == ("POST", 123, "123")
    missed = lines[unmatched.request_id]
    assert (missed["route"], missed["status"], missed["upstream"], missed["upstream_ms"], missed["attempts"]) == (
        "unmatched",
        404,
        None,
        None,
        0,
    )


async def test_request_id_from_a_trusted_proxy_is_kept(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_echo(start_upstream)
    settings = {"trusted_proxies": ["127.0.0.1/32"]}
    async with run_gateway(tmp_path, echo_routes(upstream), settings=settings) as gw:
        kept = await send(gw, "GET", "/echo/kept", {"X-Request-Id": CLIENT_ID})
        oversized = await send(gw, "GET", "/echo/oversized", {"X-Request-Id": "x" * 200})
        fresh = await send(gw, "GET", "/echo/fresh")
        code = await gw.stop()
    assert code == 0
    assert kept.request_id == CLIENT_ID and kept.upstream_headers["x-request-id"] == CLIENT_ID
    # Even from a trusted peer, an id the gateway would not log as it is gets replaced.
    assert oversized.request_id != "x" * 200 and oversized.upstream_headers["x-request-id"] == oversized.request_id
    assert fresh.request_id and fresh.upstream_headers["x-request-id"] == fresh.request_id
    lines = by_request_id(gw.access_log())
    assert lines[CLIENT_ID]["path"] == "/echo/kept"
    assert set(lines) == {CLIENT_ID, oversized.request_id, fresh.request_id}

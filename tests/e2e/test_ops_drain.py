"""Graceful drain of the whole `sluicegate run` process tree (issue 4, "Graceful drain").

The invariant under test: **every request whose head the gateway read gets exactly one complete response.** A
request counts as read when the upstream saw it, when the access log has a line for it, or when any byte of its
response arrived. A connection the listener no longer accepts is refused at connect: not a loss. A request that
ended without a single byte of response, that no upstream saw and that no access-log line mentions was never read
(it was in flight towards a connection the drain closed while idle): not a loss either.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.conftest import StartUpstream, Upstream
from tests.e2e.ops_helpers import (
    GUARD,
    GatewayProcess,
    Outcome,
    RawResponse,
    eventually,
    one_request,
    open_client,
    read_response,
    request_bytes,
    routes_yaml,
    run_gateway,
    wait_until,
)

SLOW = 1.0  # seconds the slow upstream takes per request: load, not a measured threshold
CLIENTS = 12
DRAIN_DELAY = 3.0
DRAIN_TIMEOUT = 10.0
EXIT_MARGIN = 10.0  # seconds beyond delay + timeout the supervisor may take to reap and exit (a guard)
SHORT_DRAIN_TIMEOUT = 5.0  # for tests with a single request in flight
DRAIN_TIMEOUT_WARNING = "drain timeout: connections still open were closed"


def body_for(marker: str) -> bytes:
    """A body that names its request, long enough to arrive in more than one piece."""
    return (f"{marker};" * 400).encode()


@dataclass
class Backend:
    """The upstream: counts what it saw per marker; /slow sleeps, /held and /stream wait for `release`."""

    seen: Counter[str]
    release: asyncio.Event
    upstream: Upstream


async def start_backend(start_upstream: StartUpstream) -> Backend:
    seen: Counter[str] = Counter()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        marker = request.match_info["marker"]
        seen[marker] += 1
        await asyncio.sleep(SLOW)
        return web.Response(body=body_for(marker))

    async def held(request: web.Request) -> web.Response:
        marker = request.match_info["marker"]
        seen[marker] += 1
        await release.wait()
        return web.Response(body=body_for(marker))

    async def stream(request: web.Request) -> web.StreamResponse:
        """The head and half the body at once, the rest once released: a response that started before drain."""
        marker = request.match_info["marker"]
        seen[marker] += 1
        body = body_for(marker)
        response = web.StreamResponse()
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        await release.wait()
        await response.write(body[len(body) // 2 :])
        await response.write_eof()
        return response

    async def hang(request: web.Request) -> web.Response:
        seen[request.match_info["marker"]] += 1
        await asyncio.sleep(3600)  # cancelled when the gateway gives up on it (or at clean-up)
        return web.Response()

    app = web.Application()
    app.router.add_get("/slow/{marker}", slow)
    app.router.add_get("/held/{marker}", held)
    app.router.add_get("/stream/{marker}", stream)
    app.router.add_get("/hang/{marker}", hang)
    return Backend(seen, release, await start_upstream(app))


def backend_routes(backend: Backend) -> str:
    return routes_yaml({"id": "backend", "uri": backend.upstream.url, "predicates": ["Path=/**"]})


@dataclass
class Attempt:
    marker: str
    path: str
    response: RawResponse


async def keep_alive_client(port: int, prefix: str, attempts: list[Attempt]) -> None:
    """Loop GET /slow/<prefix>-<n> on keep-alive connections; reconnect after `Connection: close` or an early end;
    stop at the first refused connect (the listener is closed)."""
    sequence = 0
    while True:
        conn = await open_client(port)
        if conn is None:
            attempts.append(Attempt(f"{prefix}-refused", "", RawResponse(Outcome.REFUSED)))
            return
        reader, writer = conn
        try:
            while True:
                marker = f"{prefix}-{sequence}"
                sequence += 1
                path = f"/slow/{marker}"
                writer.write(request_bytes("GET", path))
                response = await read_response(reader)
                attempts.append(Attempt(marker, path, response))
                if response.outcome is not Outcome.COMPLETE or response.closes:
                    break
        finally:
            writer.close()


async def refused(gw: GatewayProcess) -> bool | None:
    """True once the data port refuses connections (every process closed the listener), else None (poll)."""
    conn = await open_client(gw.port)
    if conn is None:
        return True
    conn[1].close()
    return None


async def test_drain_answers_every_request_it_read(tmp_path: Path, start_upstream: StartUpstream) -> None:
    """3 workers, 12 keep-alive clients on a 1 s upstream, SIGTERM mid-load: readiness 503 at once, the data port
    serves through the drain delay, every request read is answered completely, then connects are refused, the
    process exits 0 within delay + timeout (+ margin), and the access log has one line per completed request."""
    backend = await start_backend(start_upstream)
    async with run_gateway(
        tmp_path,
        backend_routes(backend),
        "--workers",
        "3",
        "--drain-delay",
        str(DRAIN_DELAY),
        "--drain-timeout",
        str(DRAIN_TIMEOUT),
    ) as gw:
        attempts: list[Attempt] = []
        prefixes = [f"c{i}" for i in range(CLIENTS)]
        clients = [asyncio.create_task(keep_alive_client(gw.port, p, attempts)) for p in prefixes]
        await wait_until(
            lambda: {marker.rsplit("-", 1)[0] for marker in backend.seen}.issuperset(prefixes),
            "every client has a request at the upstream",
        )
        signalled = time.monotonic()
        gw.signal(signal.SIGTERM)

        async def not_ready() -> int | None:
            status = await gw.ready_status()
            return status if status != 200 else None

        assert await eventually(not_ready, "readiness turns false after SIGTERM") == 503
        # Readiness is false, the drain delay runs: a new connection is still accepted and served completely.
        fresh = await one_request(gw.port, "GET", "/slow/fresh")
        assert fresh.outcome is Outcome.COMPLETE and fresh.status == 200, fresh
        assert fresh.body == body_for("fresh")

        async with asyncio.timeout(DRAIN_DELAY + DRAIN_TIMEOUT + EXIT_MARGIN):
            await asyncio.gather(*clients)
        remaining = DRAIN_DELAY + DRAIN_TIMEOUT + EXIT_MARGIN - (time.monotonic() - signalled)
        code = await gw.wait_exit(max(remaining, 0.1))
        assert code == 0, gw.stderr()

        log = [e for e in gw.access_log() if str(e.get("path", "")).startswith("/slow/")]
        logged_paths = Counter(str(e["path"]) for e in log)
        done = [a for a in attempts if a.response.outcome is Outcome.COMPLETE] + [
            Attempt("fresh", "/slow/fresh", fresh)
        ]
        failed = [a for a in attempts if a.response.outcome in (Outcome.TRUNCATED, Outcome.HUNG)]
        unanswered = [a for a in attempts if a.response.outcome is Outcome.UNANSWERED]

        assert not failed, f"responses cut short or hung: {failed}"
        for attempt in done:
            assert attempt.response.status == 200, attempt
            assert attempt.response.body == body_for(attempt.marker), attempt
            assert attempt.response.headers.get("x-request-id"), attempt
        # Whatever reached the upstream was read by the gateway: it was answered, exactly once.
        answered = Counter(a.marker for a in done)
        for marker, times in backend.seen.items():
            assert times == 1, f"{marker} reached the upstream {times} times"
            assert answered[marker] == 1, f"{marker} reached the upstream but got {answered[marker]} responses"
        # An attempt without any response byte was never read: not at the upstream, not in the access log.
        for attempt in unanswered:
            assert attempt.marker not in backend.seen, f"{attempt.marker} was read (upstream saw it) but unanswered"
            assert attempt.path not in logged_paths, f"{attempt.marker} is in the access log but got no response"
        # The drain answered the requests in flight with Connection: close; every client then met a closed listener.
        assert any(a.response.closes for a in done), "no response in flight at drain carried Connection: close"
        assert sum(a.response.outcome is Outcome.REFUSED for a in attempts) == CLIENTS
        # One access-log line per completed request, with the request id the client received.
        assert len(log) == len(done), f"{len(log)} access-log lines for {len(done)} completed requests"
        assert Counter(str(e["request_id"]) for e in log) == Counter(a.response.headers["x-request-id"] for a in done)
        assert logged_paths == Counter(a.path for a in done)
        assert all(e["status"] == 200 for e in log)
        assert DRAIN_TIMEOUT_WARNING not in gw.stderr(), "a request outlived the drain timeout"


async def test_drain_closes_a_request_that_outlives_the_drain_timeout(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """An upstream that never answers: at the drain timeout the client connection is closed (no partial response)
    and the gateway still exits 0 within the bound."""
    backend = await start_backend(start_upstream)
    drain_timeout = 2.0
    async with run_gateway(
        tmp_path, backend_routes(backend), "--workers", "2", "--drain-timeout", str(drain_timeout)
    ) as gw:
        conn = await open_client(gw.port)
        assert conn is not None
        reader, writer = conn
        try:
            writer.write(request_bytes("GET", "/hang/forever"))
            await wait_until(lambda: backend.seen["forever"] > 0, "the request reached the upstream")
            gw.signal(signal.SIGTERM)
            response = await read_response(reader, guard=drain_timeout + EXIT_MARGIN)
        finally:
            writer.close()
        # The client closed its side: no lingering close for the gateway to wait out.
        code = await gw.wait_exit(drain_timeout + EXIT_MARGIN)
    assert response.outcome is Outcome.UNANSWERED, response  # closed: no response, and nothing half-sent
    assert code == 0, gw.stderr()
    assert DRAIN_TIMEOUT_WARNING in gw.stderr()
    # The request was read and cut: it still has its access-log line (one line per request).
    cut = [e for e in gw.access_log() if e.get("path") == "/hang/forever"]
    assert len(cut) == 1, f"access log for the request cut at drain timeout: {cut}"


async def test_drain_answers_pipelined_requests_it_read(tmp_path: Path, start_upstream: StartUpstream) -> None:
    """Two pipelined requests read before SIGTERM: both get one complete response (the last one closes)."""
    backend = await start_backend(start_upstream)
    async with run_gateway(tmp_path, backend_routes(backend), "--drain-timeout", str(SHORT_DRAIN_TIMEOUT)) as gw:
        conn = await open_client(gw.port)
        assert conn is not None
        reader, writer = conn
        try:
            writer.write(request_bytes("GET", "/held/p1") + request_bytes("GET", "/held/p2"))
            await wait_until(lambda: backend.seen["p1"] > 0, "the first pipelined request reached the upstream")
            gw.signal(signal.SIGTERM)
            await eventually(lambda: refused(gw), "the listener closes after SIGTERM")
            backend.release.set()
            first = await read_response(reader)
            second = await read_response(reader)
            end = await asyncio.wait_for(reader.read(1), GUARD)
        finally:
            writer.close()
        # The client closed its side: no lingering close for the gateway to wait out.
        code = await gw.wait_exit(SHORT_DRAIN_TIMEOUT + EXIT_MARGIN)
    assert first.outcome is Outcome.COMPLETE and first.status == 200 and first.body == body_for("p1"), first
    assert second.outcome is Outcome.COMPLETE, f"the second pipelined request, read before the drain: {second}"
    assert not first.closes, "Connection: close on the first response while a second request was read on it"
    if second.status == 200:
        assert second.body == body_for("p2")
    else:
        assert second.status == 503, second
    assert second.closes and end == b""
    assert code == 0


async def test_drain_closes_a_keep_alive_connection_after_a_response_that_had_started(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """A response whose head went out before SIGTERM is completed; then that connection, idle, is closed by the
    drain (not left open until the drain timeout)."""
    backend = await start_backend(start_upstream)
    async with run_gateway(tmp_path, backend_routes(backend), "--drain-timeout", str(SHORT_DRAIN_TIMEOUT)) as gw:
        conn = await open_client(gw.port)
        assert conn is not None
        reader, writer = conn
        try:
            writer.write(request_bytes("GET", "/stream/s1"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)  # the response has started
            length = int(next(v for k, v in _headers(head) if k == "content-length"))
            gw.signal(signal.SIGTERM)
            await eventually(lambda: refused(gw), "the listener closes after SIGTERM")
            backend.release.set()
            body = await asyncio.wait_for(reader.readexactly(length), GUARD)
            after = await asyncio.wait_for(reader.read(1), GUARD + SHORT_DRAIN_TIMEOUT)
        finally:
            writer.close()
        # The client closed its side: no lingering close for the gateway to wait out.
        code = await gw.wait_exit(SHORT_DRAIN_TIMEOUT + EXIT_MARGIN)
    assert body == body_for("s1")
    assert after == b""
    assert code == 0
    assert DRAIN_TIMEOUT_WARNING not in gw.stderr(), "the idle connection was held until the drain timeout"


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines if line)]


async def test_sigint_drains_like_sigterm(tmp_path: Path, start_upstream: StartUpstream) -> None:
    """Ctrl-C (SIGINT to the supervisor): readiness false, the request in flight completes, exit 0."""
    backend = await start_backend(start_upstream)
    async with run_gateway(tmp_path, backend_routes(backend), "--drain-timeout", str(SHORT_DRAIN_TIMEOUT)) as gw:
        conn = await open_client(gw.port)
        assert conn is not None
        reader, writer = conn
        try:
            writer.write(request_bytes("GET", "/held/i1"))
            await wait_until(lambda: backend.seen["i1"] > 0, "the request reached the upstream")
            gw.signal(signal.SIGINT)
            await eventually(lambda: refused(gw), "the listener closes after SIGINT")
            ready = await gw.ready_status()
            backend.release.set()
            response = await read_response(reader)
        finally:
            writer.close()
        # The client closed its side: no lingering close for the gateway to wait out.
        code = await gw.wait_exit(SHORT_DRAIN_TIMEOUT + EXIT_MARGIN)
    assert ready == 503
    assert response.outcome is Outcome.COMPLETE and response.body == body_for("i1") and response.closes, response
    assert code == 0

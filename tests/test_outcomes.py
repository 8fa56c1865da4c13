"""Upstream outcomes reach the access log whichever fork of the exchange produced them (issue 10, item 4).

A CircuitBreaker with a `forward:` fallback runs its call and its fallback on forks of the exchange, and Retry
runs every attempt on a fork; the access-log line must still carry the time to the upstream's response head
(`upstream_ms`), the last endpoint tried and the number of attempts. The gateway runs in-process on real sockets
with its real access log writing to a pipe; the upstreams are real servers (or a closed port).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway.observability import ACCESS_LOG
from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import fetch, free_port


class LogPipe:
    """The real access log, writing to a pipe this test reads."""

    def __init__(self, read_end: int) -> None:
        self.read_end = read_end
        self.lines: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Flush the access log; every line written since the fixture started."""
        ACCESS_LOG.flush()
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.read_end, 65536):
                data += chunk
        self.lines.extend(orjson.loads(line) for line in data.splitlines())
        return self.lines


@pytest.fixture
def access_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogPipe]:
    """The access log on, writing to a pipe (restored after the test)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    monkeypatch.setattr(ACCESS_LOG, "enabled", True)
    monkeypatch.setattr(ACCESS_LOG, "fd", write_end)
    try:
        yield LogPipe(read_end)
    finally:
        ACCESS_LOG.flush()
        os.close(read_end)
        os.close(write_end)


async def start_named(start_upstream: StartUpstream, status: int) -> Upstream:
    """An upstream answering every request with `status`."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=f"status {status}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return await start_upstream(app)


def fallback_routes(uri: str, fallback: Upstream, *, retry: str | None = None) -> str:
    """Route `svc` to `uri` with CircuitBreaker (`forward:/fallback`), optionally inside Retry; route `fb` proxies."""
    retry_filter = f"{{name: Retry, args: {retry}}}, " if retry is not None else ""
    return f"""
routes:
  - id: svc
    uri: {uri}
    predicates: [Path=/svc/**]
    filters: [{retry_filter}{{name: CircuitBreaker, args: {{statusCodes: [500], fallbackUri: forward:/fallback}}}}]
  - id: fb
    uri: {fallback.url}
    predicates: [Path=/fallback]
"""


async def one_line(access_log: LogPipe, status: int = 200) -> dict[str, Any]:
    """The one access-log line written for the request just made (the writer logs after the response went out)."""
    for _ in range(100):  # a guard against a hang, not a measurement: the line is normally there at once
        if access_log.read():
            break
        await asyncio.sleep(0.01)
    assert len(access_log.lines) == 1, access_log.lines
    line = access_log.lines[0]
    assert line["status"] == status, line
    return line


def label(upstream: Upstream) -> str:
    return f"127.0.0.1:{upstream.port}"


async def test_forward_fallback_after_a_refused_connect_logs_the_fallbacks_upstream_time(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    fallback = await start_named(start_upstream, 200)
    gw = await start_gateway(fallback_routes(f"http://127.0.0.1:{free_port()}", fallback))
    reply = await fetch(gw, "/svc/x")
    assert (reply.status, reply.body) == (200, b"status 200")
    line = await one_line(access_log)
    assert line["route"] == "svc"
    assert line["upstream"] == label(fallback)
    assert line["attempts"] == 2  # the refused connect, then the fallback's upstream
    assert line["upstream_ms"] is not None and line["upstream_ms"] >= 0


async def test_forward_fallback_after_a_failure_status_logs_the_fallbacks_upstream(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    failing = await start_named(start_upstream, 500)
    fallback = await start_named(start_upstream, 200)
    gw = await start_gateway(fallback_routes(failing.url, fallback))
    reply = await fetch(gw, "/svc/x")
    assert (reply.status, reply.body) == (200, b"status 200")
    line = await one_line(access_log)
    assert (line["upstream"], line["attempts"]) == (label(fallback), 2)
    assert line["upstream_ms"] is not None
    assert (len(failing.hits), len(fallback.hits)) == (1, 1)


async def test_retry_around_a_forward_fallback_counts_every_attempt_and_keeps_the_upstream_time(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    failing = await start_named(start_upstream, 500)
    fallback = await start_named(start_upstream, 200)
    gw = await start_gateway(fallback_routes(failing.url, fallback, retry="{retries: 2}"))
    reply = await fetch(gw, "/svc/x")
    assert (reply.status, reply.body) == (200, b"status 200")
    line = await one_line(access_log)
    assert (line["upstream"], line["attempts"]) == (label(fallback), 4)  # 1 + 2 retries, then the fallback
    assert line["upstream_ms"] is not None
    assert (len(failing.hits), len(fallback.hits)) == (3, 1)


async def test_retry_around_refused_connects_then_a_forward_fallback(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    fallback = await start_named(start_upstream, 200)
    gw = await start_gateway(
        fallback_routes(f"http://127.0.0.1:{free_port()}", fallback, retry="{retries: 2, exceptions: IOException}")
    )
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    line = await one_line(access_log)
    assert (line["upstream"], line["attempts"]) == (label(fallback), 4)
    assert line["upstream_ms"] is not None


async def test_retry_keeps_the_last_attempts_upstream_time(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    """Without a breaker: every attempt failed with a 500, the last one's response goes back and is timed."""
    failing = await start_named(start_upstream, 500)
    gw = await start_gateway(
        f"""
routes:
  - id: svc
    uri: {failing.url}
    predicates: [Path=/svc/**]
    filters: [{{name: Retry, args: {{retries: 1}}}}]
"""
    )
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 500
    line = await one_line(access_log, 500)
    assert (line["upstream"], line["attempts"]) == (label(failing), 2)
    assert line["upstream_ms"] is not None


async def test_a_successful_call_through_a_breaker_with_a_forward_fallback_is_timed(
    start_upstream: StartUpstream, start_gateway: StartGateway, access_log: LogPipe
) -> None:
    """The breaker runs its call on a fork whenever it has a `forward:` fallback, a successful call included."""
    service = await start_named(start_upstream, 200)
    fallback = await start_named(start_upstream, 200)
    gw = await start_gateway(fallback_routes(service.url, fallback))
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    line = await one_line(access_log)
    assert (line["upstream"], line["attempts"]) == (label(service), 1)
    assert line["upstream_ms"] is not None
    assert fallback.hits == []

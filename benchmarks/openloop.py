"""An open-loop (fixed-rate) HTTP/1.1 load generator: latency without coordinated omission.

Request i is due at t0 + i/rate whatever the server does. Every ~1 ms tick the generator hands each due request
to an idle keep-alive connection, or queues it when all are busy; a connection that finishes a response takes
the oldest queued request at once. A request's latency runs from the tick at which it was found due to the end of
its response, so time spent queued behind a slow server counts. Only the generator's own timer slack (due ->
tick) is left out, and reported as `lag`: a high lag means the generator, not the target, was the limit.

    python -m benchmarks.openloop URL --rate 5000 --duration 10 [--connections 64] [--grace 2]

Prints one line, `BENCH {json}`. Bounded: it schedules for --duration seconds and waits at most --grace more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import deque
from time import perf_counter
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

from benchmarks.stats import percentile

TICK = 0.001
MAX_RECONNECTS = 1000


class _Connection(asyncio.Protocol):
    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started = 0.0  # when the clock of the request in flight started; 0.0 while idle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.gen.connected.add(self)
        self.gen.ready(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        self.gen.finished(self, self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class Generator:
    """Sends `request` to host:port at `rate` per second over `connections` keep-alive connections."""

    def __init__(self, host: str, port: int, request: bytes, rate: float, connections: int) -> None:
        self.host, self.port, self.request, self.rate, self.connections = host, port, request, rate, connections
        self.idle: deque[_Connection] = deque()
        self.backlog: deque[float] = deque()  # clock starts of due requests waiting for a connection
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = self.in_window = self.inflight = self.max_backlog = self.reconnects = 0
        self.window_end = float("inf")
        self.running = True
        self.tasks: set[asyncio.Task[None]] = set()
        self.connected: set[_Connection] = set()

    # -- connections ------------------------------------------------------------------------------------------
    def ready(self, conn: _Connection) -> None:
        conn.started = 0.0
        if self.backlog:
            self._send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)

    def _send(self, conn: _Connection, start: float) -> None:
        assert conn.transport is not None
        conn.started = start
        self.inflight += 1
        conn.transport.write(self.request)

    def finished(self, conn: _Connection, status: int) -> None:
        now = perf_counter()
        self.inflight -= 1
        self.latencies.append(now - conn.started)
        self.in_window += now <= self.window_end
        self.errors += status >= 400
        self.ready(conn)

    def lost(self, conn: _Connection) -> None:
        self.connected.discard(conn)
        if conn.started:
            self.inflight -= 1
            self.errors += 1
        if conn in self.idle:
            self.idle.remove(conn)
        if self.running and self.reconnects < MAX_RECONNECTS:
            self.reconnects += 1
            task = asyncio.get_running_loop().create_task(self._connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.errors += 1

    # -- the schedule -----------------------------------------------------------------------------------------
    def _dispatch(self, now: float) -> None:
        if self.idle:
            self._send(self.idle.popleft(), now)
        else:
            self.backlog.append(now)
            self.max_backlog = max(self.max_backlog, len(self.backlog))

    async def run(self, duration: float, grace: float) -> None:
        """Connect, schedule for `duration` seconds, then wait up to `grace` for what is outstanding."""
        await asyncio.gather(*(self._connect() for _ in range(self.connections)))
        start = perf_counter()
        self.window_end = start + duration
        scheduled = 0
        while (now := perf_counter()) < self.window_end:
            due = int((now - start) * self.rate) + 1
            for i in range(scheduled, due):
                self.lags.append(now - (start + i / self.rate))
                self._dispatch(now)
            scheduled = due
            await asyncio.sleep(TICK)
        deadline = perf_counter() + grace
        while (self.inflight or self.backlog) and perf_counter() < deadline:
            await asyncio.sleep(TICK)
        self.running = False
        self.errors += self.inflight + len(self.backlog)  # never answered: counted as errors
        for conn in list(self.connected):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)  # let connection_lost run

    def summary(self, duration: float) -> dict[str, float]:
        lat, lag = sorted(self.latencies), sorted(self.lags)
        us = 1e6
        return {
            "offered": self.rate,
            "duration_s": duration,
            "sent": len(self.lags),
            "completed": len(lat),
            "achieved": self.in_window / duration,
            "errors": self.errors,
            "p50_us": percentile(lat, 50) * us,
            "p90_us": percentile(lat, 90) * us,
            "p99_us": percentile(lat, 99) * us,
            "p999_us": percentile(lat, 99.9) * us,
            "max_us": (lat[-1] if lat else 0.0) * us,
            "lag_p50_us": percentile(lag, 50) * us,
            "lag_p99_us": percentile(lag, 99) * us,
            "max_backlog": self.max_backlog,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="http://127.0.0.1:PORT/path (loopback only)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of scheduling")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to wait for answers afterwards")
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    if url.scheme != "http" or url.hostname not in ("127.0.0.1", "localhost", "::1") or url.port is None:
        raise SystemExit("openloop: only http://127.0.0.1:PORT/... (loopback) URLs")
    request = f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode()
    gen = Generator(url.hostname, url.port, request, args.rate, args.connections)
    uvloop.run(gen.run(args.duration, args.grace))
    print("BENCH " + json.dumps(gen.summary(args.duration)), flush=True)


if __name__ == "__main__":
    main()

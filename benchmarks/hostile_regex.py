"""A catastrophic-backtracking pattern on hostile input: RE2 through the gateway vs Python's `re` directly.

    python benchmarks/hostile_regex.py

Starts the demo backend and a gateway on 127.0.0.1 whose Header predicate is `(a+)+$`, sends one 20 000-character
hostile header, and times Python's `re` on the same pattern for inputs of 20-24 characters (each extra character
doubles its time). Bounded: one request, three small local matches.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import aiohttp

from gateway.app import Gateway
from gateway.demo import start_demo_upstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def through_gateway() -> None:
    port = free_port()
    upstream = await start_demo_upstream("127.0.0.1", port)
    gateway = Gateway()
    gateway.load_text(f"routes: [{{id: r, uri: 'http://127.0.0.1:{port}', predicates: ['Header=X-Probe, (a+)+$']}}]")
    server = await gateway.start("127.0.0.1", 0)
    hostile = "a" * 20_000 + "!"
    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{server.port}/x", headers={"X-Probe": hostile}) as resp:
                status = resp.status
            elapsed = (time.perf_counter() - started) * 1000
        print(f"gateway (RE2): 20 000-character hostile header answered {status} in {elapsed:.1f} ms")
    finally:
        await gateway.stop()
        await upstream.cleanup()


def python_re() -> None:
    for size in (20, 22, 24):
        started = time.perf_counter()
        re.fullmatch(r"(a+)+$", "a" * size + "!")
        print(f"Python re: {size}-character input took {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(through_gateway())
    python_re()

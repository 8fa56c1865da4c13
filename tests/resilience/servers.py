"""Misbehaving upstreams for the resilience tests: scripted statuses, stalls, resets; each counts what arrived.

Nothing is mocked: these are real aiohttp apps or raw asyncio servers on 127.0.0.1, and the counts are what the
upstream itself observed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.services import WORKER


@dataclass
class Script:
    """An aiohttp upstream answering the statuses in `plan` in turn (then `then`), recording each request body."""

    plan: list[int | str] = field(default_factory=list)
    then: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    #: Requests in the handler now, and the most seen at once.
    in_flight: int = 0
    peak: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.read())
        step: int | str = self.plan.pop(0) if self.plan else self.then
        if step == "stall":
            await self.release.wait()  # held until the test ends it (or the gateway gives up)
            step = 200
        assert isinstance(step, int)
        return web.Response(status=step, text=f"status {step}", headers=self.headers if step != 200 else {})


def counters(route: str) -> dict[str, int]:
    """This worker's Retry/FaultInjection counters for `route` (tests compare before and after)."""
    out: dict[str, int] = {}
    for name, label in (("gateway_retries", "retry"), ("gateway_faults_injected", "fault")):
        family = WORKER.metrics.families.get(name)
        for (r, value), child in family.children.items() if family is not None else ():
            if r == route and child.value:
                out[f"{label}:{value}"] = int(child.value)
    exhausted = WORKER.metrics.families.get("gateway_retry_budget_exhausted")
    child = exhausted.children.get((route,)) if exhausted is not None else None
    out["exhausted"] = int(child.value) if child is not None else 0
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The counters that changed, by how much."""
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys() if after.get(k) != before.get(k)
    }


def reset_after_body(arrivals: list[bytes]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A raw handler: read one request (head and Content-Length body), note it, then reset the connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        arrivals.append(head.split(b" ", 1)[0] + b" " + await reader.readexactly(length))
        writer.transport.abort()  # RST: the request was read whole, no response

    return handler

"""A raw upstream that answers each request path with a response planned by the test, cut into TCP segments.

One gateway and one such upstream serve every example of a property test; each example is its own request path,
so an example that fails (or is shrunk) cannot hand its response to another.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field

from tests.conformance.client import GUARD, Conn, Reply, Truncated, iter_body, read_head, request

MARKER = ("X-Upstream-Marker", "this response must not reach the client")


@dataclass
class Plan:
    segments: list[bytes]
    close: bool  # the upstream closes the connection after the last segment


@dataclass
class ScriptedUpstream:
    """Answers `GET /r/<n>` with the segments planned for that path, on fresh or reused connections alike."""

    plans: dict[str, Plan] = field(default_factory=dict)
    count: int = 0

    def plan(self, wire: bytes, cuts: list[int], close: bool) -> str:
        bounds = [0, *sorted({c for c in cuts if 0 < c < len(wire)}), len(wire)]
        self.count += 1
        target = f"/r/{self.count}"
        self.plans[target] = Plan([wire[a:b] for a, b in zip(bounds, bounds[1:], strict=False)], close)
        return target

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n")  # EOF here ends the connection (start_raw handles it)
            plan = self.plans.pop(head.split(b" ", 2)[1].decode())
            for index, segment in enumerate(plan.segments):
                if index:
                    await asyncio.sleep(0.001)  # its own TCP segment, most of the time; nothing depends on it
                writer.write(segment)
                await writer.drain()
            if plan.close:
                writer.close()
                return


async def exchange(gw_port: int, target: str, method: str = "GET") -> tuple[Reply, bool]:
    """The client's view: the response, and whether its body ended as its framing said (False: aborted)."""
    async with Conn(gw_port) as conn, asyncio.timeout(GUARD):
        await conn.send(request(method, target, "gw.example"))
        head = await read_head(conn.reader)
        body = b""
        try:
            async for data in iter_body(conn.reader, head, method):
                body += data
        except Truncated:
            return Reply(head, body), False
        return Reply(head, body), True


def head_bytes(status_line: str, fields: list[tuple[str, str]]) -> bytes:
    return (status_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n").encode("latin-1")


def assert_problem_502(reply: Reply) -> None:
    assert reply.status == 502, f"{reply.status} {reply.head.fields} {reply.body[:200]!r}"
    assert reply.head.get("content-type") == "application/problem+json"
    assert json.loads(reply.body)["status"] == 502
    assert reply.head.get(MARKER[0]) is None, "a field of the invalid response reached the client"

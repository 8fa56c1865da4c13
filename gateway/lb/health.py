"""Active health checks: one task per pool per worker, a `GET path` to every instance each interval.

A check passes on a 2xx status line within the timeout (Envoy passes only 200 by default; any 2xx is kinder to
frameworks that answer 204). The connection is closed after each check, so a check never holds a pooled
connection and a half-dead instance cannot pass on an old keep-alive socket.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from gateway.lb.pool import Instance, Pool

log = logging.getLogger("sluicegate.lb")
MAX_STATUS_LINE = 1024
# ssl.SSLError is an OSError: a failed handshake is a failed check too


class HealthChecker:
    """Checks one pool until `stop()`; reads the pool's current config every round, so updates apply in place."""

    def __init__(self, pool: Pool, tls: ssl.SSLContext | None) -> None:
        self.pool, self.tls = pool, tls
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"health-check {self.pool.name}")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        while (hc := self.pool.config.health_check) is not None:
            instances = list(self.pool.instances)
            results = await asyncio.gather(*(self.check(i, hc.path, hc.timeout) for i in instances))
            for instance, passed in zip(instances, results, strict=True):
                if instance in self.pool.instances:  # removed by a reload meanwhile: its verdict is moot
                    self.pool.health_result(instance, passed)
            await asyncio.sleep(hc.interval)

    async def check(self, instance: Instance, path: str, timeout: float) -> bool:
        """True when the instance answered `GET path` with a 2xx status line within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self._probe(instance, path)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False

    async def _probe(self, instance: Instance, path: str) -> bool:
        endpoint = instance.endpoint
        tls = self.tls if endpoint.tls else None
        server_name = (endpoint.server_name or endpoint.host) if tls is not None else None
        reader, writer = await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=tls, server_hostname=server_name, limit=MAX_STATUS_LINE
        )
        try:
            authority = instance.ref.authority
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sluicegate-health-check\r\n"
                "Connection: close\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            line = await reader.readuntil(b"\r\n")
        finally:
            writer.close()
        parts = line.split(b" ", 2)
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1][:1] == b"2" and len(parts[1]) == 3

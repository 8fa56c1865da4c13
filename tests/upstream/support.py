"""Helpers shared by the upstream-side tests: settings builders, polling with a guard, a pool used directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.exchange import Endpoint
from gateway.settings import Settings
from gateway.upstream.connection import UpstreamConnection
from gateway.upstream.pool import ConnectionPool

GUARD = 10.0  # seconds: only a guard against a hang, never a measurement


def settings(**sections: dict[str, Any]) -> Settings:
    """Settings with some fields of some sections changed: settings(limits={...}, timeouts={...})."""
    return Settings.model_validate(sections)


async def eventually(condition: Callable[[], bool], guard: float = GUARD) -> None:
    """Return once `condition()` holds; fail the test if the guard expires first (a hang, not a measurement)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), guard)


class PoolUnderTest:
    """A ConnectionPool used directly (no gateway); every connection it hands out is closed after the test."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.handed: list[UpstreamConnection] = []

    async def acquire(self, endpoint: Endpoint, connect_timeout: float = GUARD) -> UpstreamConnection:
        conn = await self.pool.acquire(endpoint, connect_timeout)
        self.handed.append(conn)
        return conn

    def close(self) -> None:
        self.pool.close()
        for conn in self.handed:
            conn.close()

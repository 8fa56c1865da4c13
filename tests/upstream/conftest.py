"""Fixtures of the upstream-side tests (plain helpers are in support.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.settings import Settings
from gateway.upstream.pool import ConnectionPool
from tests.upstream.support import PoolUnderTest

MakePool = Callable[[Settings], PoolUnderTest]


@pytest.fixture
async def make_pool() -> AsyncIterator[MakePool]:
    made: list[PoolUnderTest] = []

    def make(config: Settings) -> PoolUnderTest:
        made.append(PoolUnderTest(ConnectionPool(config)))
        return made[-1]

    yield make
    for pool in made:
        pool.close()
    await asyncio.sleep(0)  # let the transports finish closing inside the test's loop

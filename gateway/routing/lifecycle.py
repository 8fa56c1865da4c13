"""Start and stop of the built components of one route-table version (a filter's background work).

A built filter (or predicate) MAY define `async def start(self) -> None` and `async def stop(self) -> None`; they
are found with getattr, nothing to inherit. In a worker: every `start` runs before the version serves (one that
raises refuses the version, and what had started is stopped); `stop` runs once the version was swapped out and the
requests it was serving have finished, or at drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.exchange import Exchange, Next, Response

log = logging.getLogger("sluicegate.lifecycle")
#: Seconds one component's `stop` may take: a hung plugin must not hold a drain or a reload's clean-up forever.
STOP_TIMEOUT = 5.0


def has_lifecycle(component: Any) -> bool:
    """Whether `component` has a `start` or `stop` to run."""
    return callable(getattr(component, "start", None)) or callable(getattr(component, "stop", None))


class Lifecycle:
    """The components of one table version that have start/stop, and the requests in flight on their routes."""

    def __init__(self) -> None:
        self.components: list[Any] = []
        self.inflight = 0
        self.started = False
        self._running: list[Any] = []  # started (or without a start), in start order: what `stop` stops
        self._idle: asyncio.Event | None = None
        self._stopped = False

    def add(self, component: Any) -> None:
        if has_lifecycle(component):
            self.components.append(component)

    async def start(self) -> None:
        """Run every `start`, in build order. On the first that raises, stop what started, then re-raise."""
        self.started = True
        for component in self.components:
            start: Callable[[], Awaitable[None]] | None = getattr(component, "start", None)
            if start is not None:
                try:
                    await start()
                except BaseException:
                    await self.stop()
                    raise
            self._running.append(component)

    async def stop(self) -> None:
        """Run `stop` of every started component, last started first; each runs once, errors are logged."""
        if self._stopped:
            return
        self._stopped = True
        running, self._running = self._running, []
        for component in reversed(running):
            stop: Callable[[], Awaitable[None]] | None = getattr(component, "stop", None)
            if stop is None:
                continue
            try:
                await asyncio.wait_for(stop(), STOP_TIMEOUT)
            except TimeoutError:
                log.error("stop of %s took over %gs; abandoned", type(component).__name__, STOP_TIMEOUT)
            except Exception:  # one plugin's failing stop must not keep the others running
                log.exception("stop of %s failed", type(component).__name__)

    async def retire(self) -> None:
        """After the table was swapped out: wait for the requests in flight on its routes, then stop."""
        if self.inflight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        await self.stop()

    def counted(self, chain: Next) -> Next:
        """`chain` counting its in-flight requests (only routes with a managed component pay for this)."""

        async def run(exchange: Exchange) -> Response:
            self.inflight += 1
            try:
                return await chain(exchange)
            finally:
                self.inflight -= 1
                if not self.inflight and self._idle is not None:
                    self._idle.set()

        return run

"""`PoolSet`: every pool of this worker by name, kept across reloads, and the forwarder's `EndpointResolver`.

The forwarder asks `resolve` for the instance of each attempt (direct references pass through untouched), then
reports the attempt's outcome (`report`) and the end of its response (`release`) for pooled targets only.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping

from gateway.exchange import Exchange, UpstreamRef
from gateway.lb.config import PoolConfig
from gateway.lb.health import HealthChecker
from gateway.lb.pool import Instance, Outcome, Pool
from gateway.lb.zones import ConfiguredZoneWeights, ZoneWeightSource
from gateway.metrics import METRICS

log = logging.getLogger("sluicegate.lb")


class PoolSet:
    """The pools of one worker. Not thread-safe; lives on the worker's event loop."""

    def __init__(self, tls: Callable[[], ssl.SSLContext] | None = None) -> None:
        self.pools: dict[str, Pool] = {}
        self.checkers: dict[str, HealthChecker] = {}
        #: Read on every choice in a pool with zones; the traffic-shift work may replace it at run time.
        self.zone_weights: ZoneWeightSource = ConfiguredZoneWeights()
        self._tls = tls
        self._running = False

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def update(self, configs: Mapping[str, PoolConfig]) -> None:
        """Make the pools match `configs`: unchanged pools are kept as they are, changed ones updated in place
        (instances with the same URL keep their state), new ones created, removed ones stopped and dropped.
        """
        for name in set(self.pools) - set(configs):
            self._stop_checker(name)
            del self.pools[name]
            METRICS.pool_healthy.pop(name, None)
            log.info("pool %s removed", name)
        for name, config in configs.items():
            pool = self.pools.get(name)
            if pool is None:
                self.pools[name] = Pool(name, config)
            elif pool.config != config:
                pool.reconfigure(config)
                log.info("pool %s updated in place", name)
            else:
                continue
            self._stop_checker(name)
            if self._running:
                self._start_checker(name)

    def start(self) -> None:
        """Start the health-check tasks (needs a running loop); later updates start their own."""
        self._running = True
        if self._publish not in METRICS.refreshers:
            METRICS.refreshers.append(self._publish)
        for name in self.pools:
            if name not in self.checkers:
                self._start_checker(name)

    async def aclose(self) -> None:
        """Stop every health-check task and wait for them to end."""
        tasks = [c.task for c in self.checkers.values() if c.task is not None]
        self.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self._running = False
        if self._publish in METRICS.refreshers:
            METRICS.refreshers.remove(self._publish)
            for name in self.pools:
                METRICS.pool_healthy.pop(name, None)
        for name in list(self.checkers):
            self._stop_checker(name)

    def _start_checker(self, name: str) -> None:
        pool = self.pools[name]
        if pool.config.health_check is None:
            return
        tls = self._tls() if self._tls is not None and pool.instances[0].endpoint.tls else None
        checker = self.checkers[name] = HealthChecker(pool, tls)
        checker.start()

    def _stop_checker(self, name: str) -> None:
        checker = self.checkers.pop(name, None)
        if checker is not None:
            checker.stop()

    def _publish(self) -> None:
        for pool in self.pools.values():
            pool.publish()

    # -- the EndpointResolver contract --------------------------------------------------------------------------
    def resolve(self, ref: UpstreamRef, exchange: Exchange) -> UpstreamRef:
        """The direct reference of the instance to try now. A direct `ref` is returned as it is.

        Avoids instances already in `exchange.tried` while another eligible one exists. Raises NoHealthyInstance
        (503) when no instance is eligible, InternalError for a pool unknown to this worker (a bug: routes are
        validated against `upstreams:` at load).
        """
        name = ref.pool
        if name is None:
            return ref
        pool = self.pools.get(name)
        if pool is None:
            from gateway.errors import InternalError

            raise InternalError(f"no pool named {name!r} in this worker")
        return pool.pick(exchange.tried, self.zone_weights.zone_weights(name)).ref

    def report(self, target: UpstreamRef, outcome: Outcome) -> None:
        """The outcome of one attempt on `target` (a reference `resolve` returned)."""
        found = self._instance(target)
        if found is not None:
            found[0].report(found[1], outcome)

    def release(self, target: UpstreamRef) -> None:
        """The attempt on `target` is over (response ended, failed, or was abandoned)."""
        found = self._instance(target)
        if found is not None:
            found[0].release(found[1])

    def _instance(self, target: UpstreamRef) -> tuple[Pool, Instance] | None:
        # By pool name and endpoint: after a reload that removed the instance, a late report simply finds nothing.
        pool = self.pools.get(target.pool or "")
        if pool is None or target.endpoint is None:
            return None
        instance = pool.by_endpoint.get(target.endpoint)
        return None if instance is None else (pool, instance)

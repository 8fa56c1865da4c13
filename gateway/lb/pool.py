"""One pool's per-worker state: its instances, who is eligible, the choice of one, and passive outlier detection.

An instance is *eligible* when active health checks (if configured) have not marked it down and outlier detection
has not ejected it. Ejections end lazily: the first choice after `ejected_until` brings the instance back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal
from urllib.parse import urlsplit

from gateway.errors import NoHealthyInstance
from gateway.exchange import Endpoint, UpstreamRef
from gateway.lb.balancers import POLICIES, weighted_random
from gateway.lb.config import InstanceConfig, PoolConfig
from gateway.metrics import METRICS

log = logging.getLogger("sluicegate.lb")

#: What one attempt on an instance came to, as the forwarder reports it.
Outcome = Literal["success", "5xx", "connect_failure", "ignored"]
Clock = Callable[[], float]


class Instance:
    """One instance's state in this worker. Survives a reload of an unchanged (or changed, same-URL) pool."""

    __slots__ = (
        "config",
        "ref",
        "endpoint",
        "weight",
        "zone",
        "current",
        "inflight",
        "healthy",
        "checks_in_a_row",
        "ejected_until",
        "times_ejected",
        "returned_at",
        "consecutive_5xx",
        "consecutive_connect_failures",
    )

    def __init__(self, config: InstanceConfig, pool: str) -> None:
        self.config = config
        self.ref = instance_ref(config.url, pool)
        assert self.ref.endpoint is not None
        self.endpoint: Endpoint = self.ref.endpoint
        self.weight, self.zone = config.weight, config.zone
        self.current = 0
        self.inflight = 0
        self.healthy = True  # active checks start optimistic: a reload or start must not answer 503 meanwhile
        self.checks_in_a_row = 0  # >0: passing checks in a row while down; <0: failing ones while up
        self.ejected_until: float | None = None
        self.times_ejected = 0
        self.returned_at = 0.0
        self.consecutive_5xx = 0
        self.consecutive_connect_failures = 0

    @property
    def label(self) -> str:
        return self.endpoint.label


def instance_ref(url: str, pool: str) -> UpstreamRef:
    """The direct reference the forwarder sends to for one instance (Host = the instance's authority)."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    return UpstreamRef("http", url, Endpoint(host, port, tls), authority, pool=pool)


class Pool:
    def __init__(self, name: str, config: PoolConfig, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.config = config
        self.instances: list[Instance] = []
        self.by_endpoint: dict[Endpoint, Instance] = {}
        self.reconfigure(config)

    # -- configuration ------------------------------------------------------------------------------------------
    def reconfigure(self, config: PoolConfig) -> None:
        """Apply a changed config in place: instances with the same URL keep their state, others start fresh."""
        old = {i.config.url.rstrip("/"): i for i in self.instances}
        instances = []
        for spec in config.instances:
            kept = old.get(spec.url.rstrip("/"))
            if kept is not None:
                kept.config, kept.weight, kept.zone = spec, spec.weight, spec.zone
                instances.append(kept)
            else:
                instances.append(Instance(spec, self.name))
        if config.health_check is None:
            for instance in instances:
                instance.healthy = True  # checks turned off: their verdicts no longer apply
        self.config, self.instances = config, instances
        self.by_endpoint = {i.endpoint: i for i in instances}
        self.choose = POLICIES[config.policy]
        self.publish()

    # -- choosing -----------------------------------------------------------------------------------------------
    def eligible(self) -> list[Instance]:
        """Instances that may take traffic now; ends ejections whose time is up."""
        now = self.clock()
        out = []
        for instance in self.instances:
            until = instance.ejected_until
            if until is not None and until <= now:
                self._return(instance, now)
                until = None
            if instance.healthy and until is None:
                out.append(instance)
        return out

    def pick(self, tried: Sequence[Endpoint], zone_weights: Mapping[str, int] | None) -> Instance:
        """The instance for the next attempt; counts it in flight. Raises NoHealthyInstance (503)."""
        candidates = self.eligible()
        if not candidates:
            raise NoHealthyInstance(f"no healthy instance in pool {self.name}")
        if tried and len(candidates) > 1:
            fresh = [c for c in candidates if c.endpoint not in tried]
            candidates = fresh or candidates  # a retry goes elsewhere while somewhere else is left
        weights = zone_weights if zone_weights is not None else self.config.zones
        if weights is not None:
            candidates = _zone_of(candidates, weights)
        chosen = self.choose(candidates)
        assert isinstance(chosen, Instance)
        chosen.inflight += 1
        return chosen

    # -- outcomes and outlier detection -------------------------------------------------------------------------
    def report(self, instance: Instance, outcome: Outcome) -> None:
        """One attempt's outcome (Envoy's consecutive_5xx and consecutive_local_origin_failure counters)."""
        if outcome == "success":
            instance.consecutive_5xx = instance.consecutive_connect_failures = 0
            return
        if outcome == "ignored":
            return  # the client left or our own limit: says nothing about the instance
        rules = self.config.outlier_detection
        if outcome == "5xx":
            instance.consecutive_5xx += 1
            limit, count, why = rules.consecutive_5xx, instance.consecutive_5xx, "5xx"
        else:
            instance.consecutive_connect_failures += 1
            limit = rules.consecutive_connect_failures
            count, why = instance.consecutive_connect_failures, "connect failures"
        if limit and count >= limit and instance.ejected_until is None:
            self._eject(instance, f"{count} consecutive {why}")

    def release(self, instance: Instance) -> None:
        """The attempt's response ended (or failed): no longer in flight."""
        if instance.inflight > 0:
            instance.inflight -= 1

    def _eject(self, instance: Instance, why: str) -> None:
        rules = self.config.outlier_detection
        ejected = sum(1 for i in self.instances if i.ejected_until is not None)
        serving = sum(1 for i in self.instances if i.healthy and i.ejected_until is None)
        # Envoy: at least one ejection is always allowed, more only below max-ejection-percent; and here the
        # last instance health checks still call up is never ejected (an ejection guesses, a health check knows).
        if serving <= 1 or (ejected and ejected * 100 >= rules.max_ejection_percent * len(self.instances)):
            log.warning("pool %s: %s has %s but is not ejected (ejection limit)", self.name, instance.label, why)
            instance.consecutive_5xx = instance.consecutive_connect_failures = 0
            return
        now = self.clock()
        base = rules.base_ejection_time
        # Envoy lowers the multiplier again while the instance behaves: one step per base time served.
        if instance.times_ejected and instance.returned_at:
            instance.times_ejected = max(0, instance.times_ejected - int((now - instance.returned_at) // base))
        instance.times_ejected += 1
        seconds = min(base * instance.times_ejected, max(rules.max_ejection_time, base))
        instance.ejected_until = now + seconds
        instance.consecutive_5xx = instance.consecutive_connect_failures = 0
        METRICS.outlier_ejection(self.name)
        log.warning("pool %s: %s ejected for %gs (%s)", self.name, instance.label, seconds, why)
        self.publish()

    def _return(self, instance: Instance, now: float) -> None:
        instance.ejected_until = None
        instance.returned_at = now
        log.info("pool %s: %s returns from ejection", self.name, instance.label)
        self.publish()

    # -- active health ------------------------------------------------------------------------------------------
    def health_result(self, instance: Instance, passed: bool) -> None:
        """One active check's result; thresholds decide when the instance flips."""
        METRICS.health_check(self.name, "success" if passed else "failure")
        hc = self.config.health_check
        if hc is None:
            return
        if passed == instance.healthy:
            instance.checks_in_a_row = 0
            return
        instance.checks_in_a_row += 1
        threshold = hc.healthy_threshold if passed else hc.unhealthy_threshold
        if instance.checks_in_a_row >= threshold:
            instance.healthy, instance.checks_in_a_row = passed, 0
            if passed:
                log.info("pool %s: %s is healthy again", self.name, instance.label)
            else:
                log.warning("pool %s: %s failed %d health checks: down", self.name, instance.label, threshold)
            self.publish()

    def publish(self) -> None:
        """Refresh the healthy-instances gauge (also called at every scrape)."""
        now = self.clock()
        up = sum(1 for i in self.instances if i.healthy and (i.ejected_until is None or i.ejected_until <= now))
        METRICS.pool_healthy[self.name] = up


def _zone_of(candidates: list[Instance], weights: Mapping[str, int]) -> list[Instance]:
    """The candidates of one zone drawn by weight among zones that have any; a zone with none gives its share up.

    When no weighted zone has a candidate, all candidates stay (better some zone than a 503).
    """
    zones: dict[str, list[Instance]] = {}
    for c in candidates:
        if weights.get(c.zone, 0) > 0:
            zones.setdefault(c.zone, []).append(c)
    if not zones:
        return candidates
    if len(zones) == 1:
        return next(iter(zones.values()))
    entries = [_ZoneEntry(zone, weights[zone]) for zone in zones]
    chosen = weighted_random(entries)
    assert isinstance(chosen, _ZoneEntry)
    return zones[chosen.zone]


class _ZoneEntry:
    __slots__ = ("zone", "weight", "current", "inflight")

    def __init__(self, zone: str, weight: int) -> None:
        self.zone, self.weight, self.current, self.inflight = zone, weight, 0, 0

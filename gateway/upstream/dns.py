"""Upstream host names resolved off the event loop, cached for a TTL, with one lookup in flight per name.

Only new connections resolve: a pooled connection is reused without any lookup, so the cost here is paid once per
connection, never per request. IP literals are never looked up. A failed refresh keeps serving the last good
answer for a bounded stale period (a resolver outage shorter than that is invisible); a failure with no good answer
is a 502 naming the host. Keys are (host, port) pairs from the route configuration, never from request data, so the
cache is bounded by the configuration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.errors import UpstreamDnsError

log = logging.getLogger("sluicegate.upstream")

#: (address family, numeric host, port): where to connect, in the order the system resolver ranked them.
Address = tuple[int, str, int]

#: Seconds a failed lookup with no good answer is remembered, so a dead name is not asked for on every connect.
NEGATIVE_TTL = 1.0
#: Seconds before a lookup is tried again after one failed while a stale answer is being served.
RETRY_AFTER_FAILURE = 1.0
#: Seconds a connect waits for a refresh when a good (stale) answer exists; a hung resolver costs no more than this.
REFRESH_PATIENCE = 1.0


@dataclass(slots=True)
class _Entry:
    addresses: tuple[Address, ...] | None  # None: the last lookup failed and nothing good is left
    expires: float  # clock() until which this entry is used without asking again
    good_until: float  # clock() until which `addresses` may still be served when a refresh fails
    error: str = ""


class Resolver:
    """Asynchronous name resolution (`loop.getaddrinfo`: a thread pool, never the loop) with a TTL cache.

    `ttl` 0 resolves on every connect (concurrent connects still share one lookup); `stale` bounds how long the
    last good answer outlives its TTL while lookups fail; `patience` is how long a connect waits for a refresh
    when such an answer exists. `lookups` counts getaddrinfo calls made (for tests and debugging). `clock` is
    injectable so the expiry rules can be exercised without waiting.
    """

    def __init__(
        self,
        ttl: float,
        stale: float,
        clock: Callable[[], float] = time.monotonic,
        patience: float = REFRESH_PATIENCE,
    ) -> None:
        self.ttl = ttl
        self.stale = stale
        self.clock = clock
        self.patience = patience
        self.lookups = 0
        self._cache: dict[tuple[str, int], _Entry] = {}
        self._pending: dict[tuple[str, int], asyncio.Task[_Entry]] = {}

    async def resolve(self, host: str, port: int) -> tuple[Address, ...]:
        """The addresses to try for `host:port`, best first. Raises UpstreamDnsError (502) naming the host."""
        key = (host, port)
        entry = self._cache.get(key)
        if entry is not None and self.clock() < entry.expires:
            return _answer(entry, host)
        literal = _literal(host, port)
        if literal is not None:
            self._cache[key] = _Entry(literal, float("inf"), float("inf"))
            return literal
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.get_running_loop().create_task(self._refresh(key))
        if entry is not None and entry.addresses is not None and self.clock() < entry.good_until:
            # A recent good answer exists: do not let a slow resolver hold the connect for long.
            done, _ = await asyncio.wait((task,), timeout=self.patience)
            return _answer(task.result(), host) if done else entry.addresses
        # shield: one caller giving up (its client left) must not cancel the lookup the others share.
        return _answer(await asyncio.shield(task), host)

    async def _refresh(self, key: tuple[str, int]) -> _Entry:
        """Look `key` up and store the outcome; never raises (waiters turn a failed entry into an error)."""
        host, port = key
        try:
            self.lookups += 1
            try:
                addresses = await self._lookup(host, port)
                error = "" if addresses else "no addresses"
            except OSError as exc:  # socket.gaierror included
                addresses, error = (), exc.strerror or str(exc)
            entry = self._store(key, addresses, error)
        finally:
            self._pending.pop(key, None)
        return entry

    async def _lookup(self, host: str, port: int) -> tuple[Address, ...]:
        """One system lookup, IPv4 and IPv6, on the loop's resolver thread pool. Raises OSError (gaierror)."""
        loop = asyncio.get_running_loop()
        return _addresses(await loop.getaddrinfo(host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM))

    def _store(self, key: tuple[str, int], addresses: tuple[Address, ...], error: str) -> _Entry:
        now = self.clock()
        previous = self._cache.get(key)
        if addresses:
            entry = _Entry(addresses, now + self.ttl, now + self.ttl + self.stale)
        elif previous is not None and previous.addresses is not None and now < previous.good_until:
            log.warning("resolving %s failed (%s); using its last good addresses", key[0], error)
            retry_at = min(now + min(self.ttl, RETRY_AFTER_FAILURE), previous.good_until)
            entry = _Entry(previous.addresses, retry_at, previous.good_until, error)
        else:
            entry = _Entry(None, now + min(self.ttl, NEGATIVE_TTL), now, error)
        self._cache[key] = entry
        return entry


def _answer(entry: _Entry, host: str) -> tuple[Address, ...]:
    if entry.addresses is None:
        raise UpstreamDnsError(f"cannot resolve upstream host {host}: {entry.error}")
    return entry.addresses


def _literal(host: str, port: int) -> tuple[Address, ...] | None:
    """The one address of an IP literal (IPv6 possibly with a %zone), or None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return ((socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host, port),)


def _addresses(infos: Iterable[tuple[int, int, int, str, tuple[Any, ...]]]) -> tuple[Address, ...]:
    """getaddrinfo results as addresses, in order, without duplicates; a link-local IPv6 keeps its scope."""
    out: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host, port = str(sockaddr[0]), int(sockaddr[1])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3] and "%" not in host:
            host = f"{host}%{sockaddr[3]}"
        address = (int(family), host, port)
        if address not in out:
            out.append(address)
    return tuple(out)

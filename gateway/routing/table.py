"""An immutable snapshot of compiled routes with an index, so matching does not scan every route.

Routes are ranked by (order, position in the file); the first whose predicates all hold wins. The index narrows
the candidates to routes whose exact host (if any) equals the request's and whose literal path prefix (if any)
is a segment-aligned prefix of the request path; the candidates are then tried in rank order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.cors import CorsPolicy, CorsTable
from gateway.exchange import Exchange
from gateway.routing.lifecycle import Lifecycle
from gateway.routing.route import Route
from gateway.routing.weights import WeightGroups


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    ranks: list[int] = field(default_factory=list)  # routes whose prefix ends exactly here


class _PrefixTrie:
    """Segment trie of literal path prefixes; `collect` yields the ranks of every prefix of a path."""

    def __init__(self) -> None:
        self.root = _Node()

    def add(self, prefix: str, rank: int) -> None:
        node = self.root
        for segment in _segments(prefix):
            node = node.children.setdefault(segment, _Node())
        if rank not in node.ranks:
            node.ranks.append(rank)

    def collect(self, path: str, out: list[int]) -> None:
        node = self.root
        out.extend(node.ranks)
        for segment in _segments(path):
            child = node.children.get(segment)
            if child is None:
                return
            node = child
            out.extend(node.ranks)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _host_key(host: str) -> str:
    """The request's host name without port, lower-cased, trailing dot dropped; IPv6 kept in brackets."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    return host.partition(":")[0].rstrip(".").lower()


class RouteTable:
    """Routes in rank order plus the index. Build once; never mutate; swap the whole table to change routes."""

    def __init__(
        self,
        routes: Iterable[Route],
        version: int = 0,
        global_cors: CorsTable | None = None,
        weights: WeightGroups | None = None,
    ) -> None:
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=lambda r: (r.order, r.position)))
        self.version = version
        self._global_cors = global_cors
        #: False when the file configures no CORS at all: the dispatcher then skips every CORS step.
        self.cors_enabled = global_cors is not None or any(r.cors is not None for r in self.routes)
        #: The Weight groups the routes' Weight predicates share; `weights.chooser.source` can be swapped to
        #: change splits live, without a recompile.
        self.weights = weights if weights is not None else WeightGroups()
        self.by_id = {r.id: r for r in self.routes}
        #: built components with start/stop (gateway.routing.lifecycle); the builder fills it
        self.lifecycle = Lifecycle()
        self._any_host = _PrefixTrie()
        self._by_host: dict[str, _PrefixTrie] = {}
        for rank, route in enumerate(self.routes):
            self._index(rank, route)

    def _index(self, rank: int, route: Route) -> None:
        hosts = route.hints.hosts
        prefixes = route.hints.path_prefixes or ["/"]
        tries = [self._any_host] if hosts is None else [self._by_host.setdefault(h, _PrefixTrie()) for h in hosts]
        for trie in tries:
            for prefix in prefixes:
                trie.add(prefix, rank)

    def global_cors(self, path: str) -> CorsPolicy | None:
        """The `globalcors` policy for `path`, if any."""
        return self._global_cors.lookup(path) if self._global_cors is not None else None

    def candidates(self, host: str, path: str) -> list[int]:
        """Ranks of routes that could match, ascending."""
        ranks: list[int] = []
        self._any_host.collect(path, ranks)
        if self._by_host:
            trie = self._by_host.get(_host_key(host))
            if trie is not None:
                trie.collect(path, ranks)
        ranks.sort()
        return ranks

    def match(self, exchange: Exchange) -> Route | None:
        """The first route (by rank) whose predicates hold, with `exchange.path_vars` set by its predicates."""
        previous = -1
        for rank in self.candidates(exchange.host, exchange.path):
            if rank == previous:
                continue  # a route indexed under several prefixes of the same path
            previous = rank
            route = self.routes[rank]
            if exchange.path_vars:
                exchange.path_vars = {}
            if route.matches(exchange):
                return route
        return None

    def __len__(self) -> int:
        return len(self.routes)

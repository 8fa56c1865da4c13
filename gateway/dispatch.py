"""Request flow: match a route, run its chain, and end in the terminal step (forward, re-dispatch or no-op).

`handle` is the server's handler. It never raises except on cancellation: every error becomes exactly one
problem+json response, and an unexpected exception inside a filter becomes a 500 plus a log line.
"""

from __future__ import annotations

import logging

from gateway.cors import CorsPolicy, is_cross_origin, is_preflight
from gateway.errors import BadRequest, ClientClosed, Forbidden, ForwardLoop, GatewayError, InternalError, NotFound
from gateway.exchange import CLOSE_CONNECTION, PATH_ESCAPES, Exchange, ExchangeKey, Response
from gateway.problem import problem_response_parts
from gateway.routing.table import RouteTable
from gateway.upstream.forwarder import Forwarder

log = logging.getLogger("sluicegate.dispatch")
#: forward: hops allowed per request (a fallback route may itself forward once more).
MAX_FORWARDS = 4
#: The table a request started on: a forward: re-dispatch stays on it even if a reload swapped tables meanwhile.
_TABLE: ExchangeKey[RouteTable] = ExchangeKey("route-table")


class Dispatcher:
    """Holds the current RouteTable; swapping `table` is atomic and in-flight requests keep their own."""

    def __init__(self, forwarder: Forwarder, table: RouteTable | None = None) -> None:
        self.forwarder = forwarder
        self.table = table if table is not None else RouteTable([])

    async def handle(self, exchange: Exchange) -> Response:
        table = self.table
        exchange.set(_TABLE, table)
        try:
            if table.cors is not None:
                origin = exchange.headers.get("origin")
                if origin is not None and is_cross_origin(origin, exchange):
                    policy = table.cors.lookup(exchange.path)
                    if policy is not None:
                        return await self._cors(policy, origin, exchange, table)
            return await self._route(exchange, table)
        except GatewayError as error:
            return problem(error, exchange)
        except ClientClosed:
            return problem(BadRequest("the client closed the connection"), exchange)
        except Exception:
            route_id = exchange.route.id if exchange.route is not None else "-"
            log.exception("unhandled error in route %s for %s %s", route_id, exchange.method, exchange.original_path)
            return problem(InternalError("an error occurred in the gateway"), exchange)

    async def _cors(self, policy: CorsPolicy, origin: str, exchange: Exchange, table: RouteTable) -> Response:
        """A cross-origin request under a CORS policy: preflights answered here, others checked and decorated."""
        if is_preflight(exchange):
            return policy.preflight(origin, exchange)
        allowed = policy.allow_origin(origin)
        if allowed is None:
            raise Forbidden("Invalid CORS request")
        try:
            response = await self._route(exchange, table)
        except GatewayError as error:
            response = problem(error, exchange)  # decorated too, so the page can read why it failed
        policy.decorate(response, allowed)
        return response

    async def _route(self, exchange: Exchange, table: RouteTable) -> Response:
        route = table.match(exchange)
        if route is None:
            raise NotFound(f"no route matches {exchange.method} {exchange.path}")
        escapes = exchange.get(PATH_ESCAPES)
        if escapes and not escapes.issubset(route.allowed_flags):
            # SECURITY: an encoded slash, backslash or NUL, or a ';' parameter, is read differently by backends.
            found = ", ".join(sorted(escapes - route.allowed_flags))
            raise BadRequest(f"the path contains {found}, which route {route.id!r} does not allow")
        exchange.route = route
        exchange.target = route.target
        return await route.chain(exchange)

    async def terminal(self, exchange: Exchange) -> Response:
        """The innermost step of every chain. Looks at `exchange.target`, which a filter may have changed."""
        target = exchange.target
        if target is None:
            raise InternalError("no upstream target")
        if target.is_proxied:
            return await self.forwarder.forward(exchange)
        if target.kind == "noop":
            return Response(200)
        return await self._redispatch(exchange, target.path)

    async def _redispatch(self, exchange: Exchange, path: str) -> Response:
        """SCG's forward: — match again with a local path, on the same table snapshot, loop-guarded."""
        if exchange.forwards >= MAX_FORWARDS:
            raise ForwardLoop(f"more than {MAX_FORWARDS} forward: hops; check the routes' forward: URIs")
        exchange.forwards += 1
        exchange.path = path
        return await self._route(exchange, exchange.get(_TABLE) or self.table)


def problem(error: GatewayError, exchange: Exchange) -> Response:
    if error.close_connection:
        exchange.set(CLOSE_CONNECTION, True)
    status, headers, body = problem_response_parts(error, exchange.original_path)
    return Response(status, headers, body)

"""Request flow: match a route, run its chain, and end in the terminal step (forward, re-dispatch or no-op).

`handle` is the server's handler. It never raises except on cancellation: every error becomes exactly one
problem+json response, and an unexpected exception inside a filter becomes a 500 plus a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gateway.cors import CorsPolicy, is_cross_origin, is_preflight
from gateway.errors import BadRequest, ClientClosed, Forbidden, ForwardLoop, GatewayError, InternalError, NotFound
from gateway.exchange import PATH_ESCAPES, Exchange, ExchangeKey, Response
from gateway.problem import problem_response_parts
from gateway.routing.route import Route
from gateway.routing.table import RouteTable
from gateway.upstream.forwarder import Forwarder

log = logging.getLogger("sluicegate.dispatch")
#: forward: hops allowed per request (a fallback route may itself forward once more).
MAX_FORWARDS = 4
#: The table a request started on: a forward: re-dispatch stays on it even if a reload swapped tables meanwhile.
_TABLE: ExchangeKey[RouteTable] = ExchangeKey("route-table")
#: Re-dispatch an exchange locally to a path (SCG's `forward:`): match again on the same table, loop-guarded.
Redispatch = Callable[[Exchange, str], Awaitable[Response]]
#: Set on every exchange by the dispatcher, for filters that forward locally (CircuitBreaker's `fallbackUri`).
REDISPATCH: ExchangeKey[Redispatch] = ExchangeKey("redispatch")


class Dispatcher:
    """Holds the current RouteTable; swapping `table` is atomic and in-flight requests keep their own."""

    def __init__(self, forwarder: Forwarder, table: RouteTable | None = None) -> None:
        self.forwarder = forwarder
        self.table = table if table is not None else RouteTable([])
        self._redispatch_bound: Redispatch = self._redispatch  # bound once, not per request

    async def handle(self, exchange: Exchange) -> Response:
        table = self.table
        exchange.set(_TABLE, table)
        exchange.set(REDISPATCH, self._redispatch_bound)
        try:
            if table.cors_enabled:
                return await self._with_cors(exchange, table)
            return await self._run(self._match(exchange, table), exchange)
        except GatewayError as error:
            return problem(error, exchange)
        except ClientClosed:
            return problem(BadRequest("the client closed the connection"), exchange)
        except Exception:
            route_id = exchange.route.id if exchange.route is not None else "-"
            log.exception("unhandled error in route %s for %s %s", route_id, exchange.method, exchange.original_path)
            return problem(InternalError("an error occurred in the gateway"), exchange)

    # -- CORS: only when the table configures it (cors_enabled); otherwise none of this runs ------------------
    async def _with_cors(self, exchange: Exchange, table: RouteTable) -> Response:
        """Requests under a CORS policy: preflights answered, actual ones checked and decorated, Vary always."""
        origin = exchange.headers.get("origin")
        cross = origin is not None and is_cross_origin(origin, exchange)
        if cross and is_preflight(exchange):
            policy = self._preflight_policy(exchange, table)
            if policy is not None:
                assert origin is not None
                return policy.preflight(origin, exchange)
        route: Route | None = None
        failure: GatewayError | None = None
        try:
            route = self._match(exchange, table)
        except GatewayError as error:
            failure = error
        policy = route.cors if route is not None and route.cors is not None else table.global_cors(exchange.path)
        if policy is None:
            if route is None:
                assert failure is not None
                raise failure
            return await self._run(route, exchange)
        allowed = policy.allow_origin(origin) if cross and origin is not None else None
        rejected = cross and (allowed is None or not policy.method_allowed(exchange.method))
        if rejected:  # as Spring: refused before any upstream contact, without CORS headers
            response = problem(Forbidden("Invalid CORS request"), exchange)
        elif failure is not None:
            response = problem(failure, exchange)
        else:
            response = await self._run_caught(route, exchange)
        if allowed is not None and not rejected:
            policy.decorate(response, allowed)  # errors too, so the page can read why it failed
        policy.vary(response)
        return response

    def _preflight_policy(self, exchange: Exchange, table: RouteTable) -> CorsPolicy | None:
        """The policy of the route the actual request would reach (matched with the method it announces)."""
        announced = (exchange.headers.get("access-control-request-method") or "").strip().upper()
        method, exchange.method = exchange.method, announced or exchange.method
        try:
            route = table.match(exchange)
        finally:
            exchange.method = method
        if route is not None and route.cors is not None:
            return route.cors
        return table.global_cors(exchange.path)

    async def _run_caught(self, route: Route | None, exchange: Exchange) -> Response:
        assert route is not None
        try:
            return await self._run(route, exchange)
        except GatewayError as error:
            return problem(error, exchange)

    # -- routing ----------------------------------------------------------------------------------------------
    def _match(self, exchange: Exchange, table: RouteTable) -> Route:
        """The route for `exchange` (NotFound / BadRequest otherwise); sets `exchange.route` and `.target`."""
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
        return route

    async def _run(self, route: Route, exchange: Exchange) -> Response:
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
        table = exchange.get(_TABLE) or self.table
        return await self._run(self._match(exchange, table), exchange)


def problem(error: GatewayError, exchange: Exchange) -> Response:
    if error.close_connection:
        exchange.outcomes.close_connection = True
    status, headers, body = problem_response_parts(error, exchange.original_path)
    return Response(status, headers, body)

"""`redispatch`: hand an exchange to the local route matching a path (SCG's `forward:`), as a service.

A filter calls `services.redispatch(exchange, "/fallback")` instead of importing the dispatcher. The dispatcher
puts its bound re-dispatch on every exchange it handles (on the route table the request started on, loop-guarded);
this service looks it up there, so a filter built anywhere (the kit, a test) gets the same call.
"""

from __future__ import annotations

from gateway.errors import InternalError
from gateway.exchange import Exchange, Response


class Redispatch:
    """`await redispatch(exchange, path)`: the response of the local route matching `path` for `exchange`."""

    async def __call__(self, exchange: Exchange, path: str) -> Response:
        # Imported here: gateway.dispatch imports the route table, which imports the specs, which import this.
        from gateway.dispatch import REDISPATCH

        dispatch = exchange.get(REDISPATCH)
        if dispatch is None:
            raise InternalError("forward: needs the dispatcher (this exchange did not come through one)")
        return await dispatch(exchange, path)

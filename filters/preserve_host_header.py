"""PreserveHostHeader: send the client's Host to the upstream instead of the upstream's own authority."""

from __future__ import annotations

from gateway.api import PRESERVE_HOST, BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response


class PreserveHostHeaderConfig(ComponentConfig):
    """No arguments."""


class PreserveHostHeader:
    __slots__ = ()

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.set(PRESERVE_HOST, True)
        return await call_next(exchange)


def build(config: PreserveHostHeaderConfig, context: BuildContext) -> PreserveHostHeader:
    return PreserveHostHeader()


SPEC = FilterSpec(
    name="PreserveHostHeader",
    order=905,
    config=PreserveHostHeaderConfig,
    build=build,
    summary="Forwards the Host the client sent rather than the upstream's `host[:port]` (virtual-hosted upstreams).",
    example={},
    status="stable",
)

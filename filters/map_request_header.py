"""MapRequestHeader: copy the values of one request header into another, appending to what is there."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    HeaderName,
    Next,
    RequestHeaderName,
    Response,
)


class MapRequestHeaderConfig(ComponentConfig):
    from_header: HeaderName = Field(
        description="Header whose values are copied (any header, Host included); absent: the filter does nothing."
    )
    # SECURITY: not a forwarding header: copying a client's header into X-Forwarded-For would forge it.
    to_header: RequestHeaderName = Field(
        description="Header the values are appended to (created when absent); not Host, framing or a forwarding header."
    )

    @model_validator(mode="after")
    def _distinct(self) -> MapRequestHeaderConfig:
        # SCG accepts it and doubles every value; that is never what a route means.
        if self.from_header.lower() == self.to_header.lower():
            raise ValueError("fromHeader and toHeader name the same header")
        return self


class MapRequestHeader:
    __slots__ = ("source", "target")

    def __init__(self, source: str, target: str) -> None:
        self.source, self.target = source, target

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        headers = exchange.headers
        for value in headers.get_all(self.source):
            headers.add(self.target, value)
        return await call_next(exchange)


def build(config: MapRequestHeaderConfig, context: BuildContext) -> MapRequestHeader:
    return MapRequestHeader(config.from_header, config.to_header)


SPEC = FilterSpec(
    name="MapRequestHeader",
    order=909,
    config=MapRequestHeaderConfig,
    build=build,
    summary="Appends every value of request header `fromHeader` to `toHeader`: `MapRequestHeader=Blue, X-Request-Red`.",
    example={"fromHeader": "X-Request-Id", "toHeader": "X-Correlation-Id"},
    shortcut=("fromHeader", "toHeader"),
    status="stable",
)

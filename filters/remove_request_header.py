"""RemoveRequestHeader: drop every value of a header from the request before it goes upstream."""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, HeaderName, Next, Response


class RemoveRequestHeaderConfig(ComponentConfig):
    # Any name is accepted: removing Host or a framing header is harmless, because the forwarder writes Host,
    # framing and X-Forwarded-* itself after every filter has run.
    name: HeaderName = Field(description="Header name (an RFC 9110 token), matched case-insensitively.")


class RemoveRequestHeader:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.headers.remove(self.name)
        return await call_next(exchange)


def build(config: RemoveRequestHeaderConfig, context: BuildContext) -> RemoveRequestHeader:
    return RemoveRequestHeader(config.name)


SPEC = FilterSpec(
    name="RemoveRequestHeader",
    order=908,
    config=RemoveRequestHeaderConfig,
    build=build,
    summary="Removes every value of the request header `name` before forwarding, e.g. `RemoveRequestHeader=Cookie`.",
    example={"name": "X-Request-Id"},
    shortcut=("name",),
    status="stable",
)

"""RemoveResponseHeader: drop every value of a header from the response before it reaches the client."""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, HeaderName, Next, Response


class RemoveResponseHeaderConfig(ComponentConfig):
    # Any name is accepted: the writer frames the response itself, so removing Content-Length only makes it
    # chunked, and Connection-management headers are the writer's anyway.
    name: HeaderName = Field(description="Header name (an RFC 9110 token), matched case-insensitively.")


class RemoveResponseHeader:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        response.headers.remove(self.name)
        return response


def build(config: RemoveResponseHeaderConfig, context: BuildContext) -> RemoveResponseHeader:
    return RemoveResponseHeader(config.name)


SPEC = FilterSpec(
    name="RemoveResponseHeader",
    order=911,
    config=RemoveResponseHeaderConfig,
    build=build,
    summary="Removes every value of the response header `name`, e.g. `RemoveResponseHeader=Server`.",
    example={"name": "X-Powered-By"},
    shortcut=("name",),
    status="stable",
)

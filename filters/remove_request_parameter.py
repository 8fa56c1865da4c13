"""RemoveRequestParameter: drop every query parameter with a given name before forwarding."""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response, remove_parameter


class RemoveRequestParameterConfig(ComponentConfig):
    name: str = Field(
        description="Parameter name, compared with each parameter's decoded name (`a%20b` and `a+b` are `a b`).",
        min_length=1,
        max_length=256,
    )


class RemoveRequestParameter:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.query, _ = remove_parameter(exchange.query, self.name)
        return await call_next(exchange)


def build(config: RemoveRequestParameterConfig, context: BuildContext) -> RemoveRequestParameter:
    return RemoveRequestParameter(config.name)


SPEC = FilterSpec(
    name="RemoveRequestParameter",
    order=921,
    config=RemoveRequestParameterConfig,
    build=build,
    summary="Removes every value of the named query parameter; the other parameters pass byte for byte.",
    example={"name": "red"},
    shortcut=("name",),
    status="stable",
)

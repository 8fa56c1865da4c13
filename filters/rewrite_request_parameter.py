"""RewriteRequestParameter: replace every value of a query parameter with one new value (SCG semantics)."""

from __future__ import annotations

from pydantic import Field

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    Response,
    encode_query,
    remove_parameter,
)


class RewriteRequestParameterConfig(ComponentConfig):
    name: str = Field(
        description="Parameter name, compared with each parameter's decoded name.", min_length=1, max_length=256
    )
    replacement: str = Field(
        description="The one value the parameter gets, as text (percent-encoded by the gateway).", max_length=4096
    )


class RewriteRequestParameter:
    __slots__ = ("name", "pair")

    def __init__(self, name: str, replacement: str) -> None:
        self.name = name
        self.pair = f"{encode_query(name)}={encode_query(replacement)}"  # encoded once, at load

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        rest, found = remove_parameter(exchange.query, self.name)
        if found:
            # As SCG: the old values go and the single new pair is appended after the other parameters.
            exchange.query = f"{rest}&{self.pair}" if rest else self.pair
        return await call_next(exchange)


def build(config: RewriteRequestParameterConfig, context: BuildContext) -> RewriteRequestParameter:
    return RewriteRequestParameter(config.name, config.replacement)


SPEC = FilterSpec(
    name="RewriteRequestParameter",
    order=922,
    config=RewriteRequestParameterConfig,
    build=build,
    summary="When the query has the named parameter, replaces all its values with one `replacement` (appended "
    "after the other parameters); a query without it is left alone.",
    example={"name": "campaign", "replacement": "fall2023"},
    shortcut=("name", "replacement"),
    status="stable",
)

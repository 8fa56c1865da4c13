"""AddRequestParameter: append `name=value` to the query sent upstream; the value may use path/host variables."""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response, Template, encode_query


class AddRequestParameterConfig(ComponentConfig):
    name: str = Field(
        description="Parameter name, as text (percent-encoded by the gateway).", min_length=1, max_length=256
    )
    value: str = Field(
        description="Parameter value, as text (percent-encoded by the gateway); `{var}` is replaced by a variable "
        "captured by Path or Host.",
        max_length=4096,
    )


class AddRequestParameter:
    __slots__ = ("name", "value", "pair")

    def __init__(self, name: str, value: Template) -> None:
        self.name, self.value = encode_query(name), value
        #: The whole encoded `name=value`, built once when the value has no variable.
        self.pair = f"{self.name}={encode_query(value.source)}" if value.is_static else None

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        pair = self.pair
        if pair is None:
            # SECURITY: the value is encoded as query data, so a variable cannot add parameters ("&") or a fragment.
            pair = f"{self.name}={encode_query(self.value.render(exchange.path_vars))}"
        query = exchange.query
        if not query:
            exchange.query = pair
        else:
            exchange.query = f"{query}{pair}" if query.endswith("&") else f"{query}&{pair}"
        return await call_next(exchange)


def build(config: AddRequestParameterConfig, context: BuildContext) -> AddRequestParameter:
    return AddRequestParameter(config.name, Template(config.value))


SPEC = FilterSpec(
    name="AddRequestParameter",
    order=920,
    config=AddRequestParameterConfig,
    build=build,
    summary="Appends `name=value` to the upstream request's query, after any parameters the client sent; "
    "name and value are percent-encoded.",
    example={"name": "red", "value": "blue-{segment}"},
    shortcut=("name", "value"),
    status="stable",
)

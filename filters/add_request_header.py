"""AddRequestHeader: add a header to the request sent upstream; the value may use path/host variables."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    RequestHeaderName,
    Response,
    Template,
    header_value,
)


class AddRequestHeaderConfig(ComponentConfig):
    name: RequestHeaderName = Field(description="Header name (an RFC 9110 token).")
    value: str = Field(
        description="Header value; `{var}` is replaced by a variable captured by Path or Host.",
        max_length=8192,
    )

    _value = field_validator("value")(header_value)


class AddRequestHeader:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Template) -> None:
        self.name, self.value = name, value

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        # Headers.add refuses CR/LF/NUL, so a variable can never split the header (400 instead).
        exchange.headers.add(self.name, self.value.render_header(exchange.path_vars))
        return await call_next(exchange)


def build(config: AddRequestHeaderConfig, context: BuildContext) -> AddRequestHeader:
    return AddRequestHeader(config.name, Template(config.value))


SPEC = FilterSpec(
    name="AddRequestHeader",
    order=902,
    config=AddRequestHeaderConfig,
    build=build,
    summary="Adds `name: value` to the upstream request, keeping existing values of that header.",
    example={"name": "X-Request-Red", "value": "Blue-{segment}"},
    shortcut=("name", "value"),
    status="stable",
)

"""SetRequestHeader: replace every value of a request header with one value; the value may use URI variables."""

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


class SetRequestHeaderConfig(ComponentConfig):
    # Host has its own filter (which also makes the forwarder keep it); RequestHeaderName points there.
    name: RequestHeaderName = Field(description="Header name (an RFC 9110 token).")
    value: str = Field(
        description="The one value sent upstream; `{var}` is replaced by a variable captured by Path or Host.",
        max_length=8192,
    )

    _value = field_validator("value")(header_value)


class SetRequestHeader:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Template) -> None:
        self.name, self.value = name, value

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        # Headers.set refuses CR/LF/NUL, so a variable can never split the header (400 instead).
        exchange.headers.set(self.name, self.value.render_header(exchange.path_vars))
        return await call_next(exchange)


def build(config: SetRequestHeaderConfig, context: BuildContext) -> SetRequestHeader:
    return SetRequestHeader(config.name, Template(config.value))


SPEC = FilterSpec(
    name="SetRequestHeader",
    order=907,
    config=SetRequestHeaderConfig,
    build=build,
    summary="Replaces every value of the request header `name` with `value` (added when the client sent none).",
    example={"name": "X-Request-Red", "value": "Blue-{segment}"},
    shortcut=("name", "value"),
    status="stable",
)

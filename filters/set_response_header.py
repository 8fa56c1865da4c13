"""SetResponseHeader: replace every value of a response header with one value; the value may use URI variables."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    Response,
    ResponseHeaderName,
    Template,
    header_value,
)


class SetResponseHeaderConfig(ComponentConfig):
    # Framing and connection headers of the response belong to the gateway's writer (ResponseHeaderName).
    name: ResponseHeaderName = Field(description="Header name (an RFC 9110 token).")
    value: str = Field(
        description="The one value sent to the client; `{var}` is replaced by a variable captured by Path or Host.",
        max_length=8192,
    )

    _value = field_validator("value")(header_value)


class SetResponseHeader:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Template) -> None:
        self.name, self.value = name, value

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        # Headers.set refuses CR/LF/NUL: a variable can never split the response (400 instead).
        response.headers.set(self.name, self.value.render_header(exchange.path_vars))
        return response


def build(config: SetResponseHeaderConfig, context: BuildContext) -> SetResponseHeader:
    return SetResponseHeader(config.name, Template(config.value))


SPEC = FilterSpec(
    name="SetResponseHeader",
    order=910,
    config=SetResponseHeaderConfig,
    build=build,
    summary="Replaces every value of the response header `name` with `value` (added when the upstream sent none).",
    example={"name": "X-Response-Red", "value": "Blue-{segment}"},
    shortcut=("name", "value"),
    status="stable",
)

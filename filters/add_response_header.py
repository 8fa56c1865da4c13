"""AddResponseHeader: add a header to the response sent to the client."""

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


class AddResponseHeaderConfig(ComponentConfig):
    name: ResponseHeaderName = Field(description="Header name (an RFC 9110 token).")
    value: str = Field(
        description="Header value; `{var}` is replaced by a variable captured by Path or Host.",
        max_length=8192,
    )
    override: bool = Field(
        True, description="When false, the header is added only if the response does not already carry it."
    )

    _value = field_validator("value")(header_value)


class AddResponseHeader:
    __slots__ = ("name", "value", "override")

    def __init__(self, name: str, value: Template, override: bool) -> None:
        self.name, self.value, self.override = name, value, override

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        if self.override or self.name not in response.headers:
            response.headers.add(self.name, self.value.render_header(exchange.path_vars))
        return response


def build(config: AddResponseHeaderConfig, context: BuildContext) -> AddResponseHeader:
    return AddResponseHeader(config.name, Template(config.value), config.override)


SPEC = FilterSpec(
    name="AddResponseHeader",
    order=903,
    config=AddResponseHeaderConfig,
    build=build,
    summary="Adds `name: value` to the response; with `override: false` only when the header is absent.",
    example={"name": "X-Response-Red", "value": "Blue"},
    shortcut=("name", "value", "override"),
    status="stable",
)

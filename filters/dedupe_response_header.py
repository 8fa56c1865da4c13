"""DedupeResponseHeader: keep one value (or the distinct values) of response headers sent more than once.

The usual case is CORS: the gateway and the backend both add `Access-Control-Allow-Origin`, and a browser
refuses a response carrying two. As in SCG, the values are the header's field lines; one line holding
`a, b` is a single value and is left alone (which headers are comma lists is header-specific: splitting
`Set-Cookie` or a date on commas would corrupt them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Headers,
    Next,
    Response,
    is_token,
    spring_enum,
)

Strategy = Literal["RETAIN_FIRST", "RETAIN_LAST", "RETAIN_UNIQUE"]


class DedupeResponseHeaderConfig(ComponentConfig):
    name: str = Field(
        description="Response header names, separated by spaces, e.g. `Access-Control-Allow-Origin Vary`.",
        min_length=1,
        max_length=2048,
    )
    strategy: Strategy = Field(
        "RETAIN_FIRST",
        description="RETAIN_FIRST keeps the first value, RETAIN_LAST the last, RETAIN_UNIQUE each distinct value once.",
    )

    @field_validator("name")
    @classmethod
    def _tokens(cls, value: str) -> str:
        for name in value.split():
            if not is_token(name):
                raise ValueError(f"{name!r} is not a header name (an RFC 9110 token); separate names with spaces")
        return value

    _strategy = field_validator("strategy", mode="before")(spring_enum)


def dedupe(headers: Headers, name: str, strategy: Strategy) -> None:
    """Reduce the values of `name` in place according to `strategy`; one value or none is left as it is."""
    values = headers.get_all(name)
    if len(values) <= 1:
        return
    if strategy == "RETAIN_FIRST":
        headers.set(name, values[0])  # set() keeps the first field's position
    elif strategy == "RETAIN_LAST":
        headers.set(name, values[-1])
    else:
        distinct = list(dict.fromkeys(values))
        headers.remove(name)
        for value in distinct:
            headers.add(name, value)


class DedupeResponseHeader:
    __slots__ = ("names", "strategy")

    def __init__(self, names: tuple[str, ...], strategy: Strategy) -> None:
        self.names, self.strategy = names, strategy

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        for name in self.names:
            dedupe(response.headers, name, self.strategy)
        return response


def build(config: DedupeResponseHeaderConfig, context: BuildContext) -> DedupeResponseHeader:
    return DedupeResponseHeader(tuple(dict.fromkeys(config.name.split())), config.strategy)


SPEC = FilterSpec(
    name="DedupeResponseHeader",
    order=913,
    config=DedupeResponseHeaderConfig,
    build=build,
    summary=(
        "Removes repeated values of the named response headers (space-separated): "
        "`DedupeResponseHeader=Access-Control-Allow-Credentials Access-Control-Allow-Origin, RETAIN_FIRST`."
    ),
    example={"name": "Access-Control-Allow-Credentials Access-Control-Allow-Origin", "strategy": "RETAIN_UNIQUE"},
    shortcut=("name", "strategy"),
    status="stable",
)

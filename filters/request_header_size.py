"""RequestHeaderSize: answer 431 when one request header (name plus all its values) is larger than a limit.

An edge limit (band 150): the request is refused before authentication, rate limiting or the upstream see it.
The server's own `limits.max_header_bytes` bounds the whole head before any route is matched; this filter sets a
tighter, per-route bound on single headers, with SCG's arguments and error header.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Headers,
    HeadersTooLarge,
    Next,
    Response,
    ResponseHeaderName,
    parse_data_size,
)

MAX_LIMIT = 1 << 20


class RequestHeaderSizeConfig(ComponentConfig):
    max_size: int = Field(
        16000,
        ge=1,
        le=MAX_LIMIT,
        description="Largest size of one header in bytes, its name plus all its values (e.g. 16000, 16KB).",
    )
    error_header_name: ResponseHeaderName = Field(
        "errorMessage", description="Response header of the 431 answer that names the headers that were too large."
    )

    _size = field_validator("max_size", mode="before")(parse_data_size)


def oversized(headers: Headers, limit: int) -> list[tuple[str, int]]:
    """(name, bytes) of every header whose name plus values exceed `limit`, in request order.

    Values are held latin-1-decoded, so one character is one byte on the wire. Repeated fields of one name count
    together, so splitting a value over many lines does not get round the limit.
    """
    raw = headers.raw()
    if sum(len(name) + len(value) for _, name, value in raw) <= limit:
        return []  # the usual case: even all headers together fit, so no single one can be over
    names: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for lower, name, value in raw:
        if lower not in sizes:
            names[lower], sizes[lower] = name, len(name)
        sizes[lower] += len(value)
    return [(names[lower], size) for lower, size in sizes.items() if size > limit]


class RequestHeaderSize:
    __slots__ = ("limit", "error_header")

    def __init__(self, limit: int, error_header: str) -> None:
        self.limit, self.error_header = limit, error_header

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        too_large = oversized(exchange.headers, self.limit)
        if too_large:
            found = ", ".join(f"'{name}' is {size}B" for name, size in too_large)
            message = f"request header size is larger than the permissible limit ({self.limit}B): {found}"
            raise HeadersTooLarge(message, headers=((self.error_header, message),))
        return await call_next(exchange)


def build(config: RequestHeaderSizeConfig, context: BuildContext) -> RequestHeaderSize:
    return RequestHeaderSize(config.max_size, config.error_header_name)


SPEC = FilterSpec(
    name="RequestHeaderSize",
    order=151,
    config=RequestHeaderSizeConfig,
    build=build,
    summary=(
        "Refuses with 431 a request carrying a header (name plus values) larger than `maxSize` bytes, "
        "explaining in the `errorHeaderName` response header: `RequestHeaderSize=1000B`."
    ),
    example={"maxSize": "16KB", "errorHeaderName": "X-Header-Error"},
    shortcut=("maxSize", "errorHeaderName"),
    status="stable",
)

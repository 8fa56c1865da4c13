"""RequestSize: refuse request bodies larger than `maxSize` with 413 and SCG's `errorMessage` header.

Unlike SCG, which only compares Content-Length, the body is also counted while it streams: a declared length over
the limit is refused before the upstream is contacted, and a chunked body is cut off the moment it crosses the
limit, so the upstream sees an aborted request — never a complete one.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from gateway.api import (
    Body,
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    PayloadTooLarge,
    Response,
    parse_data_size,
)

DEFAULT_MAX_SIZE = 5_000_000  # SCG's default: DataSize.ofBytes(5000000)
MAX_MAX_SIZE = 1 << 40  # 1 TB (Spring units), a bound for the schema


def readable(size: int) -> str:
    """SCG's rendering of a byte count in the message: decimal units, one decimal (`5.0 MB`)."""
    if size < 1000:
        return f"{size} B"
    exp = int(math.log(size) / math.log(1000))
    return f"{size / 1000**exp:.1f} {'kMGTPE'[exp - 1]}B"


def too_large(size: int, limit: int, *, at_least: bool = False) -> PayloadTooLarge:
    """The 413, with SCG's `errorMessage` header; `at_least` when a streamed body was cut off at `size` bytes."""
    measured = f"at least {readable(size)}" if at_least else readable(size)
    message = (
        "Request size is larger than permissible limit. "
        f"Request size is {measured} where permissible limit is {readable(limit)}"
    )
    # The header keeps SCG's wording (clients may parse it); the problem detail gives exact byte counts.
    detail = (
        f"request body exceeds the limit of {limit} bytes ({size} bytes received)"
        if at_least
        else f"request body of {size} bytes exceeds the limit of {limit} bytes"
    )
    return PayloadTooLarge(detail, headers=(("errorMessage", message),))


class LimitedBody(Body):
    """Wraps a body of unknown length and raises the 413 from `read()` once more than `limit` bytes passed."""

    def __init__(self, inner: Body, limit: int) -> None:
        self.inner, self.limit, self.seen = inner, limit, 0
        self.length = inner.length

    async def read(self) -> bytes:
        chunk = await self.inner.read()
        self.seen += len(chunk)
        if self.seen > self.limit:
            # SECURITY: raised before the chunk is handed on; the forwarder then aborts the upstream request.
            raise too_large(self.seen, self.limit, at_least=True)
        return chunk


class RequestSizeConfig(ComponentConfig):
    max_size: int = Field(
        DEFAULT_MAX_SIZE,
        description="Largest request body accepted: bytes, or a Spring DataSize such as `512KB` or `5MB` (binary "
        "units: 1 MB = 1048576 bytes).",
        ge=1,
        le=MAX_MAX_SIZE,
    )

    _size = field_validator("max_size", mode="before")(parse_data_size)


class RequestSize:
    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        body = exchange.body
        if body.length is None:
            exchange.body = LimitedBody(body, self.limit)
        elif body.length > self.limit:
            raise too_large(body.length, self.limit)  # before any upstream contact; the body is never read
        return await call_next(exchange)


def build(config: RequestSizeConfig, context: BuildContext) -> RequestSize:
    return RequestSize(config.max_size)


SPEC = FilterSpec(
    name="RequestSize",
    order=152,
    config=RequestSizeConfig,
    build=build,
    summary="Refuses request bodies over `maxSize` (default 5000000 bytes) with 413 and an `errorMessage` header; "
    "counts chunked bodies while they stream.",
    example={"maxSize": "5MB"},
    shortcut=("maxSize",),
    status="stable",
)

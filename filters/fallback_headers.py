"""FallbackHeaders: on a CircuitBreaker's forwarded fallback request, say what failed (SCG's header names).

Put it on the fallback route. When the request arrived through a CircuitBreaker's `fallbackUri`, the failure's
type and message (and those of its root cause) are set as request headers; otherwise, and always before that,
any client-sent header of those names is removed, so the fallback's upstream can trust them.
"""

from __future__ import annotations

import re

from pydantic import Field

from gateway.api import (
    EXECUTION_EXCEPTION,
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    RequestHeaderName,
    Response,
    to_wire,
)

#: Longest message passed on: enough to diagnose, too short to carry a body's worth of upstream detail.
MAX_MESSAGE = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class FallbackHeadersConfig(ComponentConfig):
    execution_exception_type_header_name: RequestHeaderName = Field(
        "Execution-Exception-Type", description="Header carrying the failure's type (e.g. `UpstreamTimeout`)."
    )
    execution_exception_message_header_name: RequestHeaderName = Field(
        "Execution-Exception-Message", description="Header carrying the failure's message."
    )
    root_cause_exception_type_header_name: RequestHeaderName = Field(
        "Root-Cause-Exception-Type", description="Header carrying the type of the failure's root cause."
    )
    root_cause_exception_message_header_name: RequestHeaderName = Field(
        "Root-Cause-Exception-Message", description="Header carrying the message of the failure's root cause."
    )


def header_text(text: str) -> str:
    """A message as a safe header value: control characters folded to a space, bounded, UTF-8 on the wire."""
    # SECURITY: messages can quote upstream data; CR/LF must never reach a header, and length stays bounded.
    return to_wire(_CONTROL.sub(" ", text).strip()[:MAX_MESSAGE])


def root_cause(error: BaseException) -> BaseException:
    """The innermost `__cause__` (or `__context__`) of `error`, loop-safe; `error` itself when it has none."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


class FallbackHeaders:
    __slots__ = ("names",)

    def __init__(self, config: FallbackHeadersConfig) -> None:
        self.names = (
            config.execution_exception_type_header_name,
            config.execution_exception_message_header_name,
            config.root_cause_exception_type_header_name,
            config.root_cause_exception_message_header_name,
        )

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        headers = exchange.headers
        for name in self.names:
            headers.remove(name)  # SECURITY: only the gateway may say why the fallback runs
        error = exchange.get(EXECUTION_EXCEPTION)
        if error is not None:
            cause = root_cause(error)
            type_name, message_name, root_type_name, root_message_name = self.names
            headers.set(type_name, type(error).__name__)
            headers.set(message_name, header_text(str(error)))
            headers.set(root_type_name, type(cause).__name__)
            headers.set(root_message_name, header_text(str(cause)))
        return await call_next(exchange)


def build(config: FallbackHeadersConfig, context: BuildContext) -> FallbackHeaders:
    return FallbackHeaders(config)


SPEC = FilterSpec(
    name="FallbackHeaders",
    order=940,
    config=FallbackHeadersConfig,
    build=build,
    summary="On the fallback route: adds the CircuitBreaker failure's type and message (and its root cause's) as "
    "request headers; removes client-sent headers of those names.",
    example={"executionExceptionTypeHeaderName": "X-Failure-Type"},
    shortcut=(),
    status="alpha",
)

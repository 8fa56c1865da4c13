"""SetStatus: replace the response status (SCG accepts a number or an HttpStatus name such as UNAUTHORIZED)."""

from __future__ import annotations

from http import HTTPStatus

from pydantic import Field, field_validator

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response, ResponseHeaderName

#: Spring HttpStatus names that Python's http.HTTPStatus spells differently (or lacks on 3.11).
SPRING_NAMES = {
    "I_AM_A_TEAPOT": 418,
    "PAYLOAD_TOO_LARGE": 413,
    "CONTENT_TOO_LARGE": 413,
    "URI_TOO_LONG": 414,
    "REQUESTED_RANGE_NOT_SATISFIABLE": 416,
    "RANGE_NOT_SATISFIABLE": 416,
    "UNPROCESSABLE_CONTENT": 422,
    "TOO_EARLY": 425,
    "MOVED_TEMPORARILY": 302,
    "BANDWIDTH_LIMIT_EXCEEDED": 509,
}


def parse_status(value: object) -> int:
    """An int status from 401, "401" or an HttpStatus name ("UNAUTHORIZED"); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("status must be a number or an HTTP status name")
    if isinstance(value, int):
        code = value
    elif isinstance(value, str) and value.strip().isdigit():
        code = int(value.strip())
    elif isinstance(value, str) and value.strip().upper() in SPRING_NAMES:
        code = SPRING_NAMES[value.strip().upper()]
    elif isinstance(value, str) and value.strip().upper() in HTTPStatus.__members__:
        code = HTTPStatus[value.strip().upper()].value
    else:
        raise ValueError(f"unknown HTTP status {value!r}")
    if not 200 <= code <= 599:
        raise ValueError("status must be between 200 and 599")
    return code


class SetStatusConfig(ComponentConfig):
    status: int = Field(description="New status: a number (200-599) or a name such as UNAUTHORIZED.", ge=200, le=599)
    original_status_header_name: ResponseHeaderName | None = Field(
        None, description="When set, the upstream's original status is reported in this response header."
    )

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> int:
        return parse_status(value)


class SetStatus:
    __slots__ = ("status", "original_header")

    def __init__(self, status: int, original_header: str | None) -> None:
        self.status, self.original_header = status, original_header

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        if self.original_header:
            response.headers.set(self.original_header, str(response.status))
        response.status = self.status
        response.reason = ""  # the upstream's phrase belonged to the old status
        return response


def build(config: SetStatusConfig, context: BuildContext) -> SetStatus:
    return SetStatus(config.status, config.original_status_header_name)


SPEC = FilterSpec(
    name="SetStatus",
    order=904,
    config=SetStatusConfig,
    build=build,
    summary="Sets the response status, e.g. `SetStatus=UNAUTHORIZED` or `SetStatus=401`.",
    example={"status": 401},
    shortcut=("status",),
    status="stable",
)

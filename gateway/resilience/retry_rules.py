"""Pure decisions of the Retry filter: which outcomes are retried, and SCG's spellings in its config."""

from __future__ import annotations

from http import HTTPStatus

from gateway.errors import GatewayError, UpstreamConnectError, UpstreamError, UpstreamTimeout
from gateway.exchange import Response, UpgradeResponse
from gateway.spec import spring_enum

#: What each accepted exception name retries: connect (UpstreamConnectError, DNS included), reset (any other
#: UpstreamError: reset, premature close, protocol or TLS failure), timeout (UpstreamTimeout).
EXCEPTION_REASONS: dict[str, frozenset[str]] = {
    "IOException": frozenset({"connect", "reset"}),
    "ConnectException": frozenset({"connect"}),
    "TimeoutException": frozenset({"timeout"}),
    "UpstreamError": frozenset({"connect", "reset"}),
    "UpstreamConnectError": frozenset({"connect"}),
    "UpstreamTimeout": frozenset({"timeout"}),
}
SERIES_OF = {1: "INFORMATIONAL", 2: "SUCCESSFUL", 3: "REDIRECTION", 4: "CLIENT_ERROR", 5: "SERVER_ERROR"}


def status_code(value: object) -> object:
    """An HttpStatus name (`BAD_GATEWAY`, `bad-gateway`) or a number, as an int."""
    if isinstance(value, str) and not value.strip().isdigit():
        name = str(spring_enum(value))
        try:
            return int(HTTPStatus[name])
        except KeyError:
            raise ValueError(f"{value!r} is not an HTTP status name (such as BAD_GATEWAY) or code") from None
    return value


def retry_reason(
    outcome: Response | GatewayError, statuses: frozenset[int], series: frozenset[str], reasons: frozenset[str]
) -> str | None:
    """Why `outcome` may be retried — `status`, `connect`, `reset` or `timeout` (the metric's reason) — or None.

    Answers the gateway makes itself (pool exhausted, no healthy instance, circuit open, 4xx) are never retried:
    they are not `UpstreamError`s, and retrying them would not reach an upstream anyway.
    """
    if isinstance(outcome, Response):
        if isinstance(outcome, UpgradeResponse):
            return None
        status = outcome.status
        return "status" if status in statuses or SERIES_OF.get(status // 100) in series else None
    if isinstance(outcome, UpstreamTimeout):
        reason = "timeout"
    elif isinstance(outcome, UpstreamConnectError):
        reason = "connect"
    elif isinstance(outcome, UpstreamError):
        reason = "reset"
    else:
        return None
    return reason if reason in reasons else None

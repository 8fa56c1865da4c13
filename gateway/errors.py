"""The gateway's one exception hierarchy, each class mapped once to a status and an RFC 9457 problem type.

Third-party exceptions (OSError, ssl errors, parser errors, pydantic errors) are translated into these where
they enter the gateway; nothing else is rendered to a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the gateway answers itself. `status` and `title` are class constants."""

    status = 500
    title = "Internal Server Error"
    #: Short machine-readable suffix of the problem `type` URI.
    kind = "internal"
    #: Close the client connection after answering: what follows on it (body, pipelined requests) is suspect.
    close_connection = False

    def __init__(self, detail: str = "", *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        #: Extra response headers (e.g. Retry-After, Allow) sent with the problem response.
        self.headers = headers


class BadRequest(GatewayError):
    status, title, kind = 400, "Bad Request", "bad-request"
    close_connection = True


class HeaderInjection(BadRequest):
    """A header name or value would have carried CR/LF/NUL or an invalid character."""

    kind = "header-injection"


class Forbidden(GatewayError):
    status, title, kind = 403, "Forbidden", "forbidden"


class NotFound(GatewayError):
    status, title, kind = 404, "Not Found", "route-not-found"


class MethodNotAllowed(GatewayError):
    status, title, kind = 405, "Method Not Allowed", "method-not-allowed"


class RequestTimeout(GatewayError):
    status, title, kind = 408, "Request Timeout", "request-timeout"
    close_connection = True


class PayloadTooLarge(GatewayError):
    status, title, kind = 413, "Content Too Large", "payload-too-large"
    close_connection = True


class ExpectationFailed(GatewayError):
    status, title, kind = 417, "Expectation Failed", "expectation-failed"


class UriTooLong(GatewayError):
    status, title, kind = 414, "URI Too Long", "uri-too-long"
    close_connection = True


class HeadersTooLarge(GatewayError):
    status, title, kind = 431, "Request Header Fields Too Large", "headers-too-large"
    close_connection = True


class InternalError(GatewayError):
    status, title, kind = 500, "Internal Server Error", "internal"


class ForwardLoop(InternalError):
    kind = "forward-loop"


class UpstreamError(GatewayError):
    """The upstream could not be reached, reset the connection or sent something we will not pass on."""

    status, title, kind = 502, "Bad Gateway", "upstream-error"


class UpstreamConnectError(UpstreamError):
    kind = "upstream-connect"


class UpstreamProtocolError(UpstreamError):
    kind = "upstream-protocol"


class UpstreamTlsError(UpstreamError):
    kind = "upstream-tls"


class UpstreamDnsError(UpstreamConnectError):
    """The upstream's host name could not be resolved and no recent good answer was left to use."""

    kind = "upstream-dns"


class ServiceUnavailable(GatewayError):
    status, title, kind = 503, "Service Unavailable", "unavailable"


class Overloaded(ServiceUnavailable):
    """A worker limit was reached; the client may retry shortly (load shedding)."""

    kind = "overloaded"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers=(("Retry-After", "1"),))


class UpstreamPoolExhausted(ServiceUnavailable):
    """Every connection to the endpoint allowed by the pool limit stayed busy for the whole acquire timeout."""

    kind = "upstream-pool-exhausted"


class NoHealthyInstance(ServiceUnavailable):
    """Every instance of the route's upstream pool is down (health checks) or ejected (outlier detection)."""

    kind = "no-healthy-instance"


class CircuitOpen(ServiceUnavailable):
    """The route's circuit breaker is open (or half-open with every probe taken) and it has no fallback.

    Retry-After says how many seconds remain until the breaker lets calls through again.
    """

    kind = "circuit-open"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers=(("Retry-After", str(retry_after)),))


class UpstreamTimeout(GatewayError):
    status, title, kind = 504, "Gateway Timeout", "upstream-timeout"


class InjectedFault(GatewayError):
    """An abort injected by the FaultInjection filter; its status is the configured one, not a class constant."""

    kind = "fault-injected"

    def __init__(self, status: int, title: str) -> None:
        super().__init__(f"fault injected by the gateway's FaultInjection filter (status {status})")
        self.status, self.title = status, title


class ClientClosed(Exception):
    """The client went away before the response was complete (logged as 499; nothing is sent)."""


#: The steps of a YAML path as `gateway.config.source.join` writes it: a key up to the next `.` or `[`, or an index.
_PATH_PART = re.compile(r"(?<=\[)\d+(?=\])|[^.\[\]]+")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a configuration source, with where it is."""

    source: str  # file name or "admin API"
    path: str  # YAML path such as routes[3].filters[1].args.parts
    message: str
    line: int | None = None  # 1-based line in `source` when known
    column: int | None = None  # 1-based column, when known (YAML syntax errors)

    @property
    def pointer(self) -> str:
        """The location as an RFC 6901 JSON pointer (`routes[3].filters[1].args.parts` → `/routes/3/filters/1/args/
        parts`), for config that arrived as JSON data (the admin API) rather than as a file with lines."""
        steps = _PATH_PART.findall(self.path)
        return "".join("/" + step.replace("~", "~0").replace("/", "~1") for step in steps)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        if self.line and self.column:
            where += f":{self.column}"
        # a problem with the file as a whole (syntax, not a mapping) has no YAML path worth printing
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration source was refused; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues

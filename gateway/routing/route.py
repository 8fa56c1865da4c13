"""A compiled route: predicates and filter chain built once from a definition, plus its per-route options."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from gateway.config.definitions import RouteDefinition
from gateway.exchange import Endpoint, Exchange, MatchHints, Next, Predicate, UpstreamRef

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
ENCODED_CHARS = ("%2F", "%5C", "%00")


class RouteOptions(BaseModel):
    """The route `metadata` keys the gateway itself reads; any other key is free-form data for filters."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    connect_timeout: int | None = Field(
        None, alias="connect-timeout", ge=1, le=300_000, description="Upstream connect timeout (ms)."
    )
    response_timeout: int | None = Field(
        None,
        alias="response-timeout",
        ge=-1,
        le=3_600_000,
        description="Time to the upstream's response head per attempt (ms); negative disables it.",
    )
    body_idle_timeout: int | None = Field(
        None, alias="body-idle-timeout", ge=1, le=3_600_000, description="Max gap between body bytes (ms)."
    )
    allow_encoded: tuple[str, ...] = Field(
        (),
        alias="allow-encoded",
        description="Escapes allowed in this route's paths though refused by default: any of %2F, %5C, %00.",
    )
    tls_server_name: str | None = Field(
        None, alias="tls-server-name", min_length=1, max_length=253, description="SNI and verified name."
    )

    def model_post_init(self, context: Any, /) -> None:
        bad = [c for c in self.allow_encoded if c.upper() not in ENCODED_CHARS]
        if bad:
            raise ValueError(f"allow-encoded accepts only {', '.join(ENCODED_CHARS)}; got {bad}")


def parse_route_uri(uri: str, options: RouteOptions) -> UpstreamRef:
    """Turn a route URI into an UpstreamRef; ValueError with a reason a user can act on."""
    if uri.startswith("forward:"):
        path = uri[len("forward:") :]
        if not path.startswith("/"):
            raise ValueError("forward: needs an absolute local path such as forward:/fallback")
        return UpstreamRef("forward", uri, path=path)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "no":
        return UpstreamRef("noop", uri)
    if scheme == "lb" or scheme.startswith("lb:"):
        raise ValueError("lb:// needs an upstream pool; pools (`upstreams:`) are not available in this version")
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use http, https, ws, wss, forward: or no://op")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in a route URI are refused; use a header filter with ${env:...}")
    if not parts.hostname:
        raise ValueError("the URI has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a route URI carries no path or query (as in SCG); use PrefixPath/SetPath to change paths")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"invalid port: {exc}") from exc
    return _direct_ref(scheme, parts.hostname, port, uri, options)


def _direct_ref(scheme: str, host: str, port: int, uri: str, options: RouteOptions) -> UpstreamRef:
    tls = scheme in ("https", "wss")
    endpoint = Endpoint(host, port, tls, options.tls_server_name)
    shown = host
    try:
        if ipaddress.ip_address(host).version == 6:
            shown = f"[{host}]"
    except ValueError:
        pass
    authority = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    kind = "ws" if scheme in ("ws", "wss") else "http"
    return UpstreamRef(kind, uri, endpoint, authority)


@dataclass(frozen=True, eq=False)
class Route:
    """A route ready to run. `position` breaks ties of `order` (file order), as SCG does."""

    id: str
    order: int
    position: int
    definition: RouteDefinition
    predicates: tuple[Predicate, ...]
    chain: Next
    target: UpstreamRef
    options: RouteOptions
    hints: MatchHints
    metadata: Mapping[str, Any]

    def matches(self, exchange: Exchange) -> bool:
        """All predicates hold (logical AND); captured variables land in `exchange.path_vars`."""
        return all(predicate(exchange) for predicate in self.predicates)

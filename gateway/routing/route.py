"""A compiled route: predicates and filter chain built once from a definition, plus its per-route options."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.definitions import RouteDefinition
from gateway.cors import CorsConfig, CorsPolicy
from gateway.exchange import Endpoint, Exchange, MatchHints, Next, Predicate, UpstreamRef
from gateway.lb.config import POOL_NAME
from gateway.routing.canonical import FLAGGED_ESCAPES
from gateway.settings import Timeouts

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_KEY = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds: connect, to the response head (None: no limit), and between body bytes. Computed per route once."""

    connect: float
    response: float | None
    body_idle: float

    @classmethod
    def of(cls, defaults: Timeouts, options: RouteOptions | None = None) -> UpstreamTimeouts:
        connect, response, idle = defaults.connect, defaults.response, defaults.body_idle
        if options is not None:
            if options.connect_timeout is not None:
                connect = options.connect_timeout / 1000
            if options.response_timeout is not None:
                response = options.response_timeout / 1000 if options.response_timeout >= 0 else None
            if options.body_idle_timeout is not None:
                idle = options.body_idle_timeout / 1000
        return cls(connect, response, idle)


class RouteOptions(BaseModel):
    """The route `metadata` keys the gateway itself reads; any other key is free-form data for filters."""

    model_config = ConfigDict(extra="ignore", frozen=True)

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
        max_length=3,
    )
    allow_path_parameters: bool = Field(
        False,
        alias="allow-path-parameters",
        description="Allow ';' path parameters (refused by default: Tomcat/Spring read /admin;x=1 as /admin).",
    )
    cors: CorsConfig | None = Field(None, description="CORS for this route's paths (Spring CorsConfiguration).")
    tls_server_name: str | None = Field(
        None, alias="tls-server-name", min_length=1, max_length=253, description="SNI and verified name."
    )

    @model_validator(mode="before")
    @classmethod
    def _misspelt_keys(cls, data: Any) -> Any:
        # metadata is free-form for filters, but a near-spelling of one of our keys is surely meant as ours
        if isinstance(data, dict):
            known = {_KEY.sub("", f.alias): f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                meant = known.get(_KEY.sub("", str(key).lower()))
                if meant is not None and key != meant:
                    raise ValueError(f"unknown key {key!r}; the gateway reads {meant!r}")
        return data

    @field_validator("allow_encoded")
    @classmethod
    def _escapes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(v.upper() for v in value)
        bad = [v for v in upper if v not in FLAGGED_ESCAPES]
        if bad:
            raise ValueError(f"allow-encoded accepts only {', '.join(sorted(FLAGGED_ESCAPES))}; got {bad}")
        return upper

    def allowed_flags(self) -> frozenset[str]:
        """The canonical-path flags (escapes and ';') this route accepts."""
        return frozenset(self.allow_encoded) | ({";"} if self.allow_path_parameters else set())


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
        scheme = "lb" if uri[:5].lower() == "lb://" else "lb:other"
        return _pool_ref(uri, scheme, parts.netloc, parts.path, parts.query or parts.fragment)
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use http, https, ws, wss, forward: or no://op")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in a route URI are refused; use a header filter with ${env:...}")
    if not parts.hostname:
        raise ValueError("the URI has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a route URI carries no path or query (as in SCG); use PrefixPath/SetPath to change paths")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"invalid port: {exc}") from exc
    return _direct_ref(scheme, parts.hostname, port, uri, options)


def _pool_ref(uri: str, scheme: str, name: str, path: str, extra: str) -> UpstreamRef:
    """`lb://name[:port]`: the pool is looked up per attempt by the resolver; the compiler checks that it exists."""
    if scheme != "lb":  # lb:ws://name and the like
        raise ValueError("only lb://name is supported (SCG's lb:ws:// is not): pools serve http and https")
    name, colon, port = name.partition(":")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"invalid port {port!r} in lb://{name}:{port}")
    # As SCG: a port after the service name is ignored; the instances under upstreams: carry their ports.
    if not POOL_NAME.fullmatch(name):
        raise ValueError("lb:// needs a pool name: lb://payments, with the pool under upstreams:")
    if path not in ("", "/") or extra:
        raise ValueError("a route URI carries no path or query (as in SCG); use PrefixPath/SetPath to change paths")
    return UpstreamRef("http", uri, pool=name)


def _direct_ref(scheme: str, host: str, port: int, uri: str, options: RouteOptions) -> UpstreamRef:
    tls = scheme in ("https", "wss")
    endpoint = Endpoint(host, port, tls, options.tls_server_name)
    shown = host
    try:
        if ipaddress.ip_address(host).version == 6:
            shown = f"[{host}]"
    except ValueError:
        pass
    authority = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
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
    timeouts: UpstreamTimeouts
    #: canonical-path flags (escapes, ';') this route accepts; computed once from `options`
    allowed_flags: frozenset[str]
    #: this route's CORS policy (`metadata.cors`), compiled once; None: the global ones apply
    cors: CorsPolicy | None = None

    def matches(self, exchange: Exchange) -> bool:
        """All predicates hold (logical AND); captured variables land in `exchange.path_vars`."""
        for predicate in self.predicates:  # noqa: SIM110 - a plain loop: no generator object per request
            if not predicate(exchange):
                return False
        return True

"""Process settings: one typed, frozen object the whole gateway reads.

Defaults are the safe ones (verify upstream TLS, strip untrusted forwarding headers, bounded header reads). The
CLI fills it from `--settings FILE` (YAML) and flags; flags win over the file, the file over the defaults.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.addresses import parse_ip
from gateway.errors import ConfigError, ConfigIssue
from gateway.headers import TOKEN_PATTERN, is_token

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Default `proxy_only_headers`: claims about the client or the URL that frameworks and CDNs trust from a proxy.
PROXY_ONLY_HEADERS = (
    "True-Client-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
    "X-Cluster-Client-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
)
#: Fields the edge rules read to frame and route a request: never removable through `proxy_only_headers`.
_EDGE_FIELDS = frozenset({"host", "content-length", "transfer-encoding"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Model):
    host: str = Field("0.0.0.0", description="Address the data port binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Data port; 0 picks a free one (tests).")

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse HOST:PORT, [IPv6]:PORT or :PORT."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        host = host.strip("[]") or "0.0.0.0"
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Timeouts(_Model):
    header_read: float = Field(10.0, gt=0, le=300, description="Seconds to receive a request's head (slowloris).")
    keepalive_idle: float = Field(
        60.0, gt=0, le=3600, description="Seconds an idle client keep-alive connection stays open."
    )
    connect: float = Field(5.0, gt=0, le=300, description="Upstream connect timeout in seconds (route default).")
    response: float | None = Field(
        30.0, gt=0, le=3600, description="Seconds to an upstream's response head per attempt; null disables."
    )
    body_idle: float = Field(
        60.0, gt=0, le=3600, description="Seconds without body bytes in either direction before aborting."
    )
    tls_handshake: float = Field(10.0, gt=0, le=300, description="Upstream TLS handshake timeout in seconds.")
    upstream_idle: float = Field(
        1.5,
        gt=0,
        le=300,
        description="Seconds a pooled upstream connection may sit idle; below common upstream keep-alive limits.",
    )
    upstream_acquire: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds a request waits for a connection when its endpoint is at the connection limit (503).",
    )
    dns_ttl: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="Seconds an upstream host name's addresses are cached; 0 resolves per connect.",
    )
    dns_stale: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="Seconds the last good addresses of a name keep being used while its lookups fail; 0 never.",
    )


class Limits(_Model):
    max_request_line: int = Field(8192, ge=256, le=65536, description="Request-target bytes before 414.")
    max_header_bytes: int = Field(32768, ge=1024, le=1 << 20, description="Total header bytes before 431.")
    max_headers: int = Field(100, ge=8, le=1000, description="Number of header fields before 431.")
    max_pipelined: int = Field(32, ge=1, le=1024, description="Requests queued on one connection (pipelining).")
    max_connections: int = Field(
        10_000, ge=1, le=1_000_000, description="Client connections per worker; beyond it requests get 503."
    )
    max_in_flight: int = Field(
        2_000, ge=1, le=1_000_000, description="Requests being served per worker; beyond it requests get 503."
    )
    upstream_max_idle_per_endpoint: int = Field(
        64, ge=0, le=10000, description="Idle keep-alive connections kept per upstream endpoint."
    )
    upstream_max_connections_per_endpoint: int = Field(
        1024,
        ge=1,
        le=100_000,
        description="Upstream connections (active and idle) per endpoint and worker; beyond it requests wait.",
    )


class UpstreamTls(_Model):
    verify: bool = Field(True, description="Verify upstream certificates. Turning this off is logged loudly.")
    ca_file: Path | None = Field(None, description="PEM bundle of CAs to trust instead of the system store.")


class Admin(_Model):
    listen: Listen = Field(
        default_factory=lambda: Listen(host="127.0.0.1", port=9090),
        description="Admin listener (health, metrics, routes view); never the data port.",
    )


class Drain(_Model):
    delay: float = Field(
        0.0, ge=0, le=120, description="Seconds to keep serving after SIGTERM with readiness false (for LBs)."
    )
    timeout: float = Field(
        20.0, gt=0, le=600, description="Seconds in-flight requests get to finish; below Kubernetes' 30 s grace."
    )


class Observability(_Model):
    access_log: bool = Field(True, description="One JSON line per request on stdout.")
    request_id_header: str = Field(
        "X-Request-Id",
        min_length=1,
        max_length=64,
        pattern=TOKEN_PATTERN,
        description="Accepted from trusted proxies, else generated.",
    )


class Settings(_Model):
    listen: Listen = Field(default_factory=Listen)
    admin: Admin = Field(default_factory=Admin)
    workers: int = Field(1, ge=1, le=64, description="Worker processes; in a container scale by replicas.")
    drain: Drain = Field(default_factory=Drain)
    observability: Observability = Field(default_factory=Observability)
    trusted_proxies: tuple[IPNetwork, ...] = Field(
        (), description="CIDRs of proxies whose X-Forwarded-*/Forwarded headers are kept and appended to."
    )
    proxy_only_headers: tuple[str, ...] = Field(
        PROXY_ONLY_HEADERS,
        description="Request headers only a trusted proxy may send (client-IP and URL-override claims): removed "
        "when the socket peer is not in trusted_proxies, as X-Forwarded-*, Forwarded and X-Real-IP always are.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    upstream_tls: UpstreamTls = Field(default_factory=UpstreamTls)
    headers_with_underscores: Literal["drop", "reject", "allow"] = Field(
        "drop", description="Client header names containing '_' (nginx and Envoy refuse them by default)."
    )
    merge_slashes: bool = Field(True, description="Collapse '//' in request paths before matching.")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
        return value

    @field_validator("proxy_only_headers", mode="before")
    @classmethod
    def _header_names(cls, value: object) -> object:
        if isinstance(value, str):  # SLUICEGATE_PROXY_ONLY_HEADERS=True-Client-IP,X-Client-IP
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            return value
        for name in value:
            if not isinstance(name, str) or not is_token(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _EDGE_FIELDS:
                raise ValueError(f"{name!r} is needed by the gateway itself and cannot be removed this way")
        return tuple(value)

    def is_trusted_proxy(self, address: str) -> bool:
        """True when the socket peer `address` is inside one of `trusted_proxies`."""
        if not self.trusted_proxies or not address:
            return False
        ip = parse_ip(address)  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return ip is not None and any(ip in net for net in self.trusted_proxies)


ENV_PREFIX = "SLUICEGATE_"


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`SLUICEGATE_TIMEOUTS__CONNECT=2` -> {"timeouts": {"connect": 2}}; values read as YAML scalars.

    A comma-separated value for a list setting (`SLUICEGATE_TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16`) is split.
    """
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or not raw:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        value: Any = yaml.safe_load(raw) if raw.strip() else raw
        if path == ["trusted_proxies"] and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _has(data: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _origin(loc: tuple[Any, ...], flags: Mapping[str, Any], env: Mapping[str, Any], source: str) -> str:
    """Which source set the value at `loc`: the one that wins in the precedence is the one to blame."""
    if _has(flags, loc):
        return "command-line flag"
    if _has(env, loc):
        return f"{ENV_PREFIX}* environment"
    return source


def load_settings(
    path: Path | None, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings with one precedence: defaults < settings file < SLUICEGATE_* environment < flags (`overrides`).

    Raises ConfigError naming the source and the setting at fault.
    """
    data: dict[str, Any] = {}
    source = str(path) if path else "settings"
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([ConfigIssue(source, "", f"cannot read settings: {exc}")]) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([ConfigIssue(source, "", "settings must be a mapping")])
        data = dict(loaded or {})
    env = env_overrides(os.environ if environ is None else environ)
    data = _merge(_merge(data, env), overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(_origin(err["loc"], overrides or {}, env, source), ".".join(map(str, err["loc"])), err["msg"])
            for err in exc.errors()
        ]
        raise ConfigError(issues) from exc

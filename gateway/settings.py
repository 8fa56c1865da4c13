"""Process settings: one typed, frozen object the whole gateway reads.

Defaults are the safe ones (verify upstream TLS, strip untrusted forwarding headers, bounded header reads). The
CLI fills it from `--settings FILE` (YAML) and flags; flags win over the file, the file over the defaults.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from gateway.addresses import parse_ip
from gateway.config.binding import error_message
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
    """A listener address. Also given as one HOST:PORT string ([IPv6]:PORT; :PORT keeps the default host)."""

    host: str = Field("0.0.0.0", description="Address the data port binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Data port; 0 picks a free one (tests).")

    @model_validator(mode="before")
    @classmethod
    def _host_port(cls, value: object) -> object:
        return split_host_port(value) if isinstance(value, str) else value

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse HOST:PORT, [IPv6]:PORT or :PORT (this class's default host). Raises ValueError."""
        return cls.model_validate(text)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class AdminListen(Listen):
    """The admin listener's address: loopback unless a host is given, whichever part is set and wherever."""

    # SECURITY: the default host lives on the field, not in a default factory of the parent, so that a settings
    # source giving only the port (SLUICEGATE_ADMIN__LISTEN__PORT=9191) never moves the admin API off loopback.
    host: str = Field("127.0.0.1", description="Address the admin listener binds to (loopback by default).")
    port: int = Field(9090, ge=0, le=65535, description="Admin port; 0 picks a free one (tests).")


def split_host_port(text: str) -> dict[str, str]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` as the fields of a listener; an absent host is left out (the model's
    default applies). Raises ValueError for anything else."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 host needs brackets, [HOST]:PORT; got {text!r}")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, [IPv6]:PORT or :PORT, got {text!r}")
    return {"host": host, "port": port} if host else {"port": port}


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
    """The admin listener and who may use it. At most one of `token`, `token_file` and `tokens` is set; with none,
    the gateway makes a token at start when the listener is on loopback, else serves only health and metrics."""

    listen: AdminListen = Field(
        default_factory=AdminListen,
        description="Admin listener (health, metrics, routes view); never the data port.",
    )
    # SECURITY: tokens are SecretStr: repr, str and model_dump(mode="json") show '**********', never the value.
    token: SecretStr | None = Field(
        None, description="Bearer token for the admin API (author `admin`); also SLUICEGATE_ADMIN__TOKEN."
    )
    token_file: Path | None = Field(
        None, description="File holding the admin API's bearer token (author `admin`), read at start."
    )
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="Named bearer tokens, name -> token; the name is the author of changes."
    )

    @field_validator("tokens")
    @classmethod
    def _names_and_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not is_token(name):
                raise ValueError(f"{name!r} is not a valid author name (an RFC 9110 token)")
            if not secret.get_secret_value():
                raise ValueError(f"the token of {name!r} is empty")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [n for n, v in (("token", self.token), ("token_file", self.token_file), ("tokens", self.tokens)) if v]
        if len(given) > 1:
            raise ValueError(f"set only one of admin.token, admin.token_file and admin.tokens (got {', '.join(given)})")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("admin.token is empty")
        return self

    def credentials(self) -> dict[str, str] | None:
        """Author name -> token, or None when no token is configured. Raises ValueError naming `token_file` when
        that file cannot be read or is empty (never its content)."""
        if self.tokens:
            return {name: secret.get_secret_value() for name, secret in self.tokens.items()}
        if self.token is not None:
            return {"admin": self.token.get_secret_value()}
        if self.token_file is not None:
            try:
                text = self.token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"admin.token_file {self.token_file}: {exc.__class__.__name__}") from None
            if not text:
                raise ValueError(f"admin.token_file {self.token_file} is empty")
            return {"admin": text}
        return None


def _redis_url(value: SecretStr | None) -> SecretStr | None:
    """A Redis URL that parses (scheme, host, port), refused without quoting it: it may hold a password."""
    if value is None:
        return None
    parts = urlsplit(value.get_secret_value())
    try:
        parts.port  # noqa: B018 - parsing the port is the check: a password with a bare '/' breaks it
    except ValueError:
        raise ValueError("not a valid Redis URL: percent-encode special characters in the password") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"scheme {parts.scheme!r}: use redis://, rediss:// (TLS) or unix://")
    return value


class StoreSettings(_Model):
    """Where dynamic routes and the version history are kept (`store:`). `kind` defaults to `redis` when
    `redis_url` is set, `file` when `path` is set, else `memory` (lost at restart: a warning says so at start)."""

    kind: Literal["memory", "file", "redis"] | None = Field(
        None, description="memory, file or redis; default redis when redis_url is set, file when path is set."
    )
    path: Path | None = Field(None, description="The file store's JSON file (one gateway per file: it is locked).")
    history: int = Field(100, ge=2, le=10000, description="Versions kept (older ones are pruned, oldest first).")
    # SECURITY: SecretStr: a URL may carry the Redis password (redis://:pw@host); never shown or logged.
    redis_url: SecretStr | None = Field(
        None, description="redis://, rediss:// (TLS, verified) or unix:// URL of the shared store (store.kind redis)."
    )
    key_prefix: str = Field("sluicegate:", min_length=1, description="Prefix of every Redis key the store uses.")
    start_without_redis: bool = Field(
        False, description="Start on the static routes when Redis is down (else refuse); converge when it returns."
    )
    timeout: float = Field(1.0, gt=0, le=30, description="Seconds one Redis call may take (writes fail with 503).")
    poll_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between version polls (the safety net under pub/sub)."
    )

    _url = field_validator("redis_url")(_redis_url)

    @model_validator(mode="after")
    def _where(self) -> Self:
        kind = self.effective_kind()
        if kind == "file" and self.path is None:
            raise ValueError("store.kind file needs store.path")
        if kind == "redis" and self.redis_url is None:
            raise ValueError("store.kind redis needs store.redis_url")
        if self.kind == "memory" and (self.path is not None or self.redis_url is not None):
            raise ValueError("store.path or store.redis_url is set but store.kind is memory: drop one of them")
        return self

    def effective_kind(self) -> Literal["memory", "file", "redis"]:
        if self.kind is not None:
            return self.kind
        if self.redis_url is not None:
            return "redis"
        return "file" if self.path is not None else "memory"


class StateSettings(_Model):
    """Where filters' shared keyed values live (`state:`): this worker's memory, or Redis shared by every replica."""

    redis_url: SecretStr | None = Field(
        None, description="Redis URL for filters' shared state; default store.redis_url; none: per-worker memory."
    )
    key_prefix: str | None = Field(
        None, min_length=1, description="Prefix of every Redis key of filter state; default store.key_prefix."
    )
    timeout: float = Field(0.25, gt=0, le=30, description="Seconds one state call may take before it fails.")

    _url = field_validator("redis_url")(_redis_url)


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
    store: StoreSettings = Field(default_factory=StoreSettings)
    state: StateSettings = Field(default_factory=StateSettings)
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
        # SLUICEGATE_PROXY_ONLY_HEADERS=A,B arrives as a list: env values are split by the setting's type (below).
        if not isinstance(value, list | tuple):
            return value
        for name in value:
            if not isinstance(name, str) or not is_token(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _EDGE_FIELDS:
                raise ValueError(f"{name!r} is needed by the gateway itself and cannot be removed this way")
        return tuple(value)

    def state_key_prefix(self) -> str:
        """The prefix of filters' state keys: `state.key_prefix`, else the store's (one prefix per fleet)."""
        return self.state.key_prefix or self.store.key_prefix

    def state_redis_url(self) -> SecretStr | None:
        """Where filters' shared values live: `state.redis_url`, else `store.redis_url`, else None (memory)."""
        return self.state.redis_url or self.store.redis_url

    def for_workers(self) -> dict[str, Any]:
        """These settings as the JSON a worker's start message carries. Secrets stay masked (model_dump) except
        the one a worker needs, the shared state's Redis URL, given as `state.redis_url`.

        SECURITY: only for the private control socketpair between the supervisor and its workers; never log or
        show the result."""
        data = self.model_dump(mode="json")
        # A worker never opens the store: it gets the store's key prefix (the state's default) and nothing else of it
        # (its masked URL would not even validate).
        data["store"] = {"key_prefix": self.store.key_prefix}
        url = self.state_redis_url()
        if url is not None:
            data["state"]["redis_url"] = url.get_secret_value()
        return data

    def is_trusted_proxy(self, address: str) -> bool:
        """True when the socket peer `address` is inside one of `trusted_proxies`."""
        if not self.trusted_proxies or not address:
            return False
        ip = parse_ip(address)  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return ip is not None and any(ip in net for net in self.trusted_proxies)


ENV_PREFIX = "SLUICEGATE_"


_SEQUENCES = (list, tuple, set, frozenset)
_NUMBERS_AND_BOOLEANS = (bool, int, float)


def _alternatives(annotation: Any) -> list[Any]:
    """The types a field accepts: the members of a union, without None."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    found = [a for a in _alternatives(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return found[0] if found else None


def _is_list(annotation: Any) -> bool:
    return any(get_origin(a) in _SEQUENCES or a in _SEQUENCES for a in _alternatives(annotation))


def _annotation_at(path: list[str]) -> Any:
    """The type of the setting at `path` (None when no setting has that name)."""
    model: type[BaseModel] | None = Settings
    annotation: Any = None
    for part in path:
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        annotation = field.annotation
        model = _model_of(annotation)
    return annotation


def list_setting_paths(model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every list setting (each takes a comma-separated value from the environment)."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        if _is_list(field.annotation):
            paths.append((*prefix, name))
        elif inner is not None:
            paths.extend(list_setting_paths(inner, (*prefix, name)))
    return paths


def env_value(annotation: Any, raw: str) -> Any:
    """An environment value, read by the type of its setting so that no value changes kind on the way:

    - a list setting: comma-separated, each part stripped, empty parts dropped;
    - a number or boolean (optionally null): a YAML scalar (`2`, `2.5`, `true`, `off`, `null`), as before;
    - anything else (strings, names, paths, HOST:PORT listeners, unknown settings): the value verbatim.
    A value that does not read as the scalar it should be stays the raw string, for the model to refuse by name.
    """
    if _is_list(annotation):
        return [part.strip() for part in raw.split(",") if part.strip()]
    kinds = _alternatives(annotation)
    if annotation is not None and all(k in _NUMBERS_AND_BOOLEANS for k in kinds):
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
        return value if value is None or isinstance(value, _NUMBERS_AND_BOOLEANS) else raw
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`SLUICEGATE_TIMEOUTS__CONNECT=2` -> {"timeouts": {"connect": 2}}: `__` between levels, each value read by
    the type of its setting (`env_value`). Empty variables are ignored.

    Raises ConfigError when one setting is given both whole and by its parts (`..._LISTEN` and `..._LISTEN__PORT`).
    """
    out: dict[str, Any] = {}
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or not raw:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node: Any = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or isinstance(node.get(path[-1]), dict):
            issue = ConfigIssue(f"{ENV_PREFIX}* environment", ".".join(path), "set both whole and by its parts")
            raise ConfigError([issue])
        node[path[-1]] = env_value(_annotation_at(path), raw)
    return out


def _listeners_as_fields(data: Mapping[str, Any], model: type[BaseModel] = Settings) -> dict[str, Any]:
    """Listener values given as HOST:PORT strings turned into their fields, so that sources merge field by field
    (a file's `admin.listen: 10.0.0.5:9191` under `SLUICEGATE_ADMIN__LISTEN__PORT` keeps its host). A string that
    does not parse is left for the model to refuse with its location."""
    out = dict(data)
    for name, value in data.items():
        field = model.model_fields.get(name)
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            continue
        if isinstance(value, str) and issubclass(inner, Listen):
            with contextlib.suppress(ValueError):
                out[name] = split_host_port(value)
        elif isinstance(value, Mapping):
            out[name] = _listeners_as_fields(value, inner)
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
    env = _listeners_as_fields(env_overrides(os.environ if environ is None else environ))
    flags = _listeners_as_fields(overrides or {})
    data = _merge(_merge(_listeners_as_fields(data), env), flags)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(
                _origin(err["loc"], flags, env, source),
                ".".join(map(str, err["loc"])),
                error_message(Settings, err),
            )
            for err in exc.errors()
        ]
        raise ConfigError(issues) from exc

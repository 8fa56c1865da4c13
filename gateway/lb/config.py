"""The `upstreams:` section of routes.yaml: one validated, frozen `PoolConfig` per pool name.

Names follow the file's kebab-case style; Envoy's names for the same knobs are given in each description, and the
defaults are Envoy's where it has one. Durations are milliseconds (an integer, as route `metadata` timeouts) or a
string with a unit: `500ms`, `30s`, `5m`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.config.source import join

POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
Fail = Callable[[str, str], None]


def _seconds(value: Any) -> Any:
    """An int is milliseconds; a string carries its unit. Returns seconds (float) for pydantic's bounds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 30s or an integer of milliseconds")
    if isinstance(value, int):
        return value / 1000
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"expected a duration such as 500ms, 30s or 5m; got {value!r}")
        return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError("expected a duration such as 500ms, 30s or an integer of milliseconds")


Duration = Annotated[float, BeforeValidator(_seconds)]
_MODEL = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InstanceConfig(BaseModel):
    """One instance of a pool (Envoy: an endpoint of a cluster's load assignment)."""

    model_config = _MODEL
    url: str = Field(description="http://host:port or https://host:port; no path, query or credentials.")
    weight: int = Field(1, ge=1, le=10_000, description="Relative share within its zone (Envoy load_balancing_weight).")
    zone: str = Field("default", min_length=1, max_length=64, description="Zone (Envoy locality) it runs in.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("an instance URL is http://host:port or https://host:port")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in an instance URL are refused")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("an instance URL carries no path or query")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"invalid port: {exc}") from exc
        return value


class HealthCheckConfig(BaseModel):
    """Active health checks (Envoy health_checks.http_health_check). Off unless this block is present."""

    model_config = _MODEL
    path: str = Field("/health", min_length=1, max_length=2048, description="Path GET-requested on each instance.")
    interval: Duration = Field(10.0, ge=0.01, le=3600, description="Between checks of an instance (Envoy interval).")
    timeout: Duration = Field(1.0, ge=0.01, le=60, description="For one check's response head (Envoy timeout).")
    healthy_threshold: int = Field(
        2, alias="healthy-threshold", ge=1, le=100, description="Passing checks in a row to mark an instance up."
    )
    unhealthy_threshold: int = Field(
        3, alias="unhealthy-threshold", ge=1, le=100, description="Failing checks in a row to mark it down."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        # SECURITY: the path goes onto a request line; nothing but visible ASCII may reach it.
        if not value.startswith("/") or any(not 0x21 <= ord(c) <= 0x7E for c in value):
            raise ValueError("the health-check path must start with / and hold visible ASCII only")
        return value


class OutlierConfig(BaseModel):
    """Passive outlier detection from real traffic (Envoy outlier_detection). On by default with these values."""

    model_config = _MODEL
    consecutive_5xx: int = Field(
        5, alias="consecutive-5xx", ge=0, le=1000, description="5xx answers or failures after connecting; 0: off."
    )
    consecutive_connect_failures: int = Field(
        5,
        alias="consecutive-connect-failures",
        ge=0,
        le=1000,
        description="Failed connects (refused, timeout, TLS) in a row; 0: off (Envoy local-origin failures).",
    )
    base_ejection_time: Duration = Field(
        30.0, alias="base-ejection-time", ge=0.01, le=86_400, description="Ejection time × times ejected."
    )
    max_ejection_time: Duration = Field(
        300.0, alias="max-ejection-time", ge=0.01, le=86_400, description="Cap of one ejection's time."
    )
    max_ejection_percent: int = Field(
        10, alias="max-ejection-percent", ge=0, le=100, description="Most of the pool ejected at once (one always may)."
    )


class PoolConfig(BaseModel):
    """One pool under `upstreams:` (Envoy: a cluster; SCG: a service id resolved by Spring Cloud LoadBalancer)."""

    model_config = _MODEL
    instances: tuple[InstanceConfig, ...] = Field(min_length=1, max_length=1000, description="The instances.")
    policy: Literal["round_robin", "least_request", "random"] = Field(
        "round_robin", description="Choice within a zone: smooth weighted round robin, P2C least request, random."
    )
    health_check: HealthCheckConfig | None = Field(None, alias="health-check", description="Active checks; off.")
    outlier_detection: OutlierConfig = Field(
        default_factory=OutlierConfig, alias="outlier-detection", description="Passive ejection."
    )
    zones: Mapping[str, Annotated[int, Field(ge=0, le=10_000)]] | None = Field(
        None, description="Zone → relative share of requests; absent: zones are ignored."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        schemes = {urlsplit(i.url).scheme for i in self.instances}
        if len(schemes) > 1:
            raise ValueError("all instances of a pool share one scheme (http or https)")
        urls = [i.url.rstrip("/") for i in self.instances]
        if len(set(urls)) != len(urls):
            raise ValueError("an instance URL appears twice")
        if self.zones is not None:
            missing = sorted({i.zone for i in self.instances} - set(self.zones))
            if missing:
                raise ValueError(f"instances in zones without a weight under zones: {', '.join(missing)}")
            if not any(self.zones.values()):
                raise ValueError("at least one zone needs a weight above 0")
        return self


def parse_upstreams(data: Any, path: str, fail: Fail) -> dict[str, PoolConfig]:
    """Validate `upstreams:`; every problem is reported through `fail(yaml_path, message)`. Returns the valid pools."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        fail(path, "upstreams must be a mapping of pool name to pool")
        return {}
    pools: dict[str, PoolConfig] = {}
    for name, body in data.items():
        where = join(path, str(name))
        if not isinstance(name, str) or not POOL_NAME.fullmatch(name):
            fail(where, "a pool name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
            continue
        if not isinstance(body, dict):
            fail(where, "a pool must be a mapping with instances")
            continue
        from gateway.config.components import validate_model  # here: components imports the registry at load

        pool = validate_model(PoolConfig, body, where, fail)
        if pool is not None:
            pools[name] = pool
    return pools

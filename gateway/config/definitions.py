"""Route definitions: frozen, validated data in SCG's route model, serialisable back unchanged.

A definition says what a route is; `gateway.routing` builds it into something that runs. `GatewayConfig` is what
validation produces and what the supervisor hands its workers, as plain JSON-able data (`to_data`/`from_data`).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config.provenance import redact_message
from gateway.cors import GlobalCors
from gateway.errors import ConfigIssue
from gateway.lb.config import PoolConfig


@dataclass(frozen=True, slots=True)
class ComponentDef:
    """One predicate or filter as written: shortcut (`StripPrefix=2`) or expanded (`{name, args}`).

    `args` are the named arguments after shortcut values were mapped onto the spec's field order.
    """

    name: str
    args: Mapping[str, Any]
    shortcut: str | None = None  # the text after "=" when written in shortcut form

    def to_data(self) -> Any:
        """The form it was written in, for YAML/JSON output."""
        if self.shortcut is not None:
            return f"{self.name}={self.shortcut}" if self.shortcut else self.name
        return {"name": self.name, "args": dict(self.args)}

    def to_wire(self) -> dict[str, Any]:
        """Everything it holds, for `GatewayConfig.to_data` (the shortcut text and the args it was mapped to)."""
        return {"name": self.name, "args": dict(self.args), "shortcut": self.shortcut}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ComponentDef:
        return cls(data["name"], dict(data["args"]), data["shortcut"])


@dataclass(frozen=True, slots=True)
class RouteDefinition:
    id: str
    uri: str
    predicates: tuple[ComponentDef, ...] = ()
    filters: tuple[ComponentDef, ...] = ()
    order: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": self.uri,
            "order": self.order,
            "predicates": [p.to_data() for p in self.predicates],
            "filters": [f.to_data() for f in self.filters],
            "metadata": dict(self.metadata),
        }

    def to_wire(self) -> dict[str, Any]:
        return {**self.to_data(), "predicates": _wire(self.predicates), "filters": _wire(self.filters)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RouteDefinition:
        return cls(
            data["id"],
            data["uri"],
            tuple(ComponentDef.from_wire(p) for p in data["predicates"]),
            tuple(ComponentDef.from_wire(f) for f in data["filters"]),
            data["order"],
            dict(data["metadata"]),
        )


def _wire(components: tuple[ComponentDef, ...]) -> list[dict[str, Any]]:
    return [c.to_wire() for c in components]


class DemoUpstream(BaseModel):
    """`demo-upstream:` asks `sluicegate run` to start the built-in echo backend alongside the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    listen: str = Field("127.0.0.1:8081", description="HOST:PORT the echo backend binds to (loopback only).")

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        if host != "localhost" and not (_is_ip(host) and ipaddress.ip_address(host).is_loopback):
            # SECURITY: the echo backend reflects headers and bodies; it must never face a network.
            raise ValueError("the demo backend listens on loopback only (127.0.0.1, ::1 or localhost)")
        return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class GatewayConfig:
    """Everything one routes file defines, validated: what a worker builds its route table from.

    Plain data, nothing built: validating it touched no runtime state. `to_data()` is JSON-able and
    `from_data(to_data())` gives an equal config (the supervisor sends it to workers with its `checksum`).
    """

    source: str
    routes: tuple[RouteDefinition, ...]
    default_filters: tuple[ComponentDef, ...] = ()
    demo_upstream: DemoUpstream | None = None
    #: Texts that came from ${env:...} (each value, each string it was put into): redacted wherever shown.
    env_values: frozenset[str] = frozenset()
    #: `upstreams:`: pool name -> validated pool config (gateway/lb/config.py)
    upstreams: Mapping[str, PoolConfig] = field(default_factory=dict)
    #: what does not refuse the file but should be read: skipped profile documents, `${...}` left as text
    warnings: tuple[ConfigIssue, ...] = ()
    #: how the file was read (which `---` documents), for `sluicegate validate` and the log
    notes: tuple[str, ...] = ()
    #: `upstreams:` as written (plain data): what `to_data` carries, validated again into `upstreams` by `from_data`
    upstreams_written: Mapping[str, Any] = field(default_factory=dict)
    #: `globalcors:` as validated (None when the file has none)
    globalcors: GlobalCors | None = None
    #: YAML path of each route in `routes` (its index in the file, under the Spring block for an application.yml)
    route_paths: tuple[str, ...] = ()
    #: YAML path of `default-filters`
    defaults_path: str = "default-filters"
    #: line of each route, predicate and filter entry, by YAML path: build errors in a worker say where
    lines: Mapping[str, int] = field(default_factory=dict)
    #: ids of the routes that came from the admin API (the rest are the routes file's)
    dynamic_ids: frozenset[str] = frozenset()

    def issue(self, path: str, message: str) -> ConfigIssue:
        """A problem found after validation (a plugin's build or start failing), at `path` of this config."""
        # SECURITY: a plugin's message may quote a value that came from ${env:...}; it goes to logs and stderr.
        return ConfigIssue(self.source, path, redact_message(message, self.env_values), self.lines.get(path))

    def source_of(self, route_id: str) -> str:
        """`dynamic` for a route added through the admin API, `static` for one from the routes file."""
        return "dynamic" if route_id in self.dynamic_ids else "static"

    def path_of(self, index: int) -> str:
        """The YAML path of `routes[index]` (its place in the file)."""
        return self.route_paths[index] if index < len(self.route_paths) else f"routes[{index}]"

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data holding everything (ComponentDefs with their args and shortcut text)."""
        return {
            "source": self.source,
            "routes": [r.to_wire() for r in self.routes],
            "default_filters": _wire(self.default_filters),
            "demo_upstream": None if self.demo_upstream is None else self.demo_upstream.model_dump(mode="json"),
            "env_values": sorted(self.env_values),
            "upstreams": dict(self.upstreams_written),
            "warnings": [_issue_data(i) for i in self.warnings],
            "notes": list(self.notes),
            "globalcors": None if self.globalcors is None else self.globalcors.model_dump(mode="json"),
            "route_paths": list(self.route_paths),
            "defaults_path": self.defaults_path,
            "lines": dict(self.lines),
            "dynamic_ids": sorted(self.dynamic_ids),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> GatewayConfig:
        """The config `to_data` produced. Raises ValueError (pydantic's ValidationError) or KeyError on other data."""
        demo, cors = data["demo_upstream"], data["globalcors"]
        return cls(
            source=data["source"],
            routes=tuple(RouteDefinition.from_wire(r) for r in data["routes"]),
            default_filters=tuple(ComponentDef.from_wire(f) for f in data["default_filters"]),
            demo_upstream=None if demo is None else DemoUpstream.model_validate(demo),
            env_values=frozenset(data["env_values"]),
            upstreams={n: PoolConfig.model_validate(p) for n, p in data["upstreams"].items()},
            upstreams_written=dict(data["upstreams"]),
            warnings=tuple(ConfigIssue(**i) for i in data["warnings"]),
            notes=tuple(data["notes"]),
            globalcors=None if cors is None else GlobalCors.model_validate(cors),
            route_paths=tuple(data["route_paths"]),
            defaults_path=data["defaults_path"],
            lines=dict(data["lines"]),
            dynamic_ids=frozenset(data["dynamic_ids"]),
        )


def canonical_json(data: Any) -> bytes:
    """The one serialisation the checksum is taken of: sorted keys, no whitespace."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def checksum(data: Any) -> str:
    """sha256 of `canonical_json(data)`, hex: a worker checks the config it received is the one validated."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def _issue_data(issue: ConfigIssue) -> dict[str, Any]:
    return {
        "source": issue.source,
        "path": issue.path,
        "message": issue.message,
        "line": issue.line,
        "column": issue.column,
    }

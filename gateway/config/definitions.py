"""Route definitions: frozen, validated data in SCG's route model, serialisable back unchanged.

A definition says what a route is; `gateway.routing` compiles it into something that runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    """Everything one routes file defines."""

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

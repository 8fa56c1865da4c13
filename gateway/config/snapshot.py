"""One validated version of the routes file as the supervisor hands it to every worker: data, version, checksum."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.definitions import GatewayConfig, checksum
from gateway.errors import ConfigError, ConfigIssue
from gateway.registry import Registry
from gateway.routing.compiler import load_routes_file
from gateway.settings import Settings

log = logging.getLogger("sluicegate.supervisor")


@dataclass(frozen=True)
class Snapshot:
    """One validated version of the routes file, as every worker receives it: plain data, never file text."""

    version: int
    source: str
    config: GatewayConfig
    #: `config.to_data()` and the sha256 of its canonical JSON, computed once per version
    data: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    @classmethod
    def of(cls, config: GatewayConfig, version: int) -> Snapshot:
        """Raises ConfigError when the config cannot travel as JSON (a mapping key that is not text, an integer
        beyond 64 bits): YAML allows both, the hand-out to workers does not."""
        data = config.to_data()
        try:
            digest = checksum(data)
        except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
            raise ConfigError(
                [ConfigIssue(config.source, "", f"cannot be handed to the workers as JSON: {exc}")]
            ) from exc
        return cls(version, config.source, config, data, digest)

    def message(self) -> dict[str, Any]:
        return {"version": self.version, "checksum": self.checksum, "config": self.data}


def compile_snapshot(path: Path, registry: Registry, settings: Settings, version: int) -> Snapshot:
    """Read and validate `path` (no build: nothing created). Raises ConfigError naming the file, YAML path and
    reason of every problem."""
    config = load_routes_file(path, registry, settings)
    for note in config.notes:  # here, once per load, not in every worker
        log.info("%s: %s", path, note)
    for warning in config.warnings:
        log.warning("%s", warning)
    return Snapshot.of(config, version)

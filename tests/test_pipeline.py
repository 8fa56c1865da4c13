"""The config pipeline: parse → validate (no side effects) → build (workers), and the config as data to workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from gateway.config.definitions import GatewayConfig, canonical_json, checksum
from gateway.config.snapshot import Snapshot, compile_snapshot
from gateway.config.source import load_yaml
from gateway.errors import ConfigError, ConfigIssue
from gateway.exchange import Exchange, Response
from gateway.metrics import METRICS
from gateway.registry import load_registry
from gateway.routing.builder import Runtime, build
from gateway.routing.compiler import validate
from gateway.routing.lifecycle import Lifecycle
from gateway.services import WORKER
from gateway.settings import Settings
from gateway.worker import received_config
from tests.plugins import write_distribution

#: Routes with every kind of part a worker needs: Retry (its budget), CircuitBreaker (breakers), a pool, globalcors,
#: default filters, a Spring-style shortcut and an expanded form, metadata, env-substituted text.
RESILIENT = """\
default-filters:
  - AddResponseHeader=X-Gw, yes
globalcors:
  cors-configurations:
    '[/**]':
      allowedOrigins: https://app.example
      allowedMethods: [GET, POST]
upstreams:
  users:
    instances:
      - url: http://127.0.0.1:9
        weight: 3
routes:
  - id: retried
    uri: lb://users
    predicates: [Path=/retried/**]
    filters:
      - name: Retry
        args: {retries: 2, statuses: BAD_GATEWAY, budgetPercent: 30}
  - id: broken
    uri: http://127.0.0.1:9
    order: 5
    metadata: {response-timeout: 2000, team: "${env:TEAM}"}
    predicates: [Path=/broken/**, Method=GET]
    filters:
      - name: CircuitBreaker
        args: {statusCodes: [500], fallbackUri: forward:/fallback}
      - StripPrefix=1
"""


async def _never(exchange: Exchange) -> Response:
    raise AssertionError("not served")


def _validated(text: str = RESILIENT) -> GatewayConfig:
    doc, issues = load_yaml(text, "routes.yaml", {"TEAM": "payments"})
    assert not issues
    return validate(doc, load_registry(), Settings())


async def test_validation_creates_no_runtime_state() -> None:
    """Validating Retry and CircuitBreaker routes creates no budget, breaker, metric sample or task; building does."""
    # Budgets and breakers are the worker's live objects in its keyed state (gateway.services); metric families
    # are declared in its metric registry when a filter is built.
    live_before, families_before = dict(WORKER.local._live), set(WORKER.metrics.families)
    metrics_before, tasks_before = METRICS.snapshot(), asyncio.all_tasks()
    config = _validated()
    assert [r.id for r in config.routes] == ["retried", "broken"]
    assert dict(WORKER.local._live) == live_before and WORKER.local.find("Retry", "retried") is None
    assert set(WORKER.metrics.families) == families_before
    assert METRICS.snapshot() == metrics_before
    assert asyncio.all_tasks() == tasks_before

    table = build(config, load_registry(), Settings(), Runtime(_never, 7))
    assert WORKER.local.find("Retry", "retried") is not None  # the probe can see what a build creates
    assert table.version == 7 and [r.id for r in table.routes] == ["retried", "broken"]
    assert table.global_cors("/x") is not None


BUILD_FAILS = """
from gateway.api import ComponentConfig, FilterSpec

class Config(ComponentConfig):
    pass

def _build(config, ctx):
    raise RuntimeError("no key server")

SPEC = FilterSpec(name="FailsToBuild", order=960, config=Config, build=_build, summary="test plugin", example={})
"""


def test_a_plugin_build_error_comes_from_build_not_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation does not call a plugin's build; the build reports its failure at the filter's file and line."""
    write_distribution(tmp_path, "team-fails", {"sluicegate.filters": {"FailsToBuild": "plug_fails:SPEC"}},
                       {"plug_fails": BUILD_FAILS})  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "routes.yaml"
    path.write_text(RESILIENT + "  - id: plugged\n    uri: http://127.0.0.1:9\n    filters: [FailsToBuild]\n")
    monkeypatch.setenv("TEAM", "payments")
    registry = load_registry()
    snapshot = compile_snapshot(path, registry, Settings(), 3)  # what the supervisor does: accepted
    with pytest.raises(ConfigError) as caught:
        build(snapshot.config, registry, Settings(), Runtime(_never, 3))
    [issue] = caught.value.issues
    assert (issue.source, issue.path, issue.line) == (str(path), "routes[2].filters[0]", 31)
    assert "FailsToBuild from distribution 'team-fails' failed to build: RuntimeError: no key server" in issue.message


def test_validation_reports_every_error_with_its_location() -> None:
    text = RESILIENT.replace("retries: 2", "retries: -1").replace("StripPrefix=1", "StripPrefix=x")
    text = text.replace("lb://users", "lb://nobody")
    with pytest.raises(ConfigError) as caught:
        _validated(text)
    paths = {i.path: i.line for i in caught.value.issues}
    assert paths == {
        "routes[0].uri": 15,
        "routes[0].filters[0].args.retries": 19,
        "routes[1].filters[1].args.parts": 28,
    }


def test_config_data_round_trips() -> None:
    """to_data → JSON → from_data gives an equal config, and its data serialises back unchanged."""
    config = _validated()
    data = config.to_data()
    wire = orjson.loads(canonical_json(data))
    again = GatewayConfig.from_data(wire)
    assert again == config
    assert canonical_json(again.to_data()) == canonical_json(data)
    assert checksum(again.to_data()) == checksum(data)
    assert again.globalcors is not None and again.upstreams["users"].instances[0].weight == 3
    assert again.routes[1].metadata["team"] == "payments" and again.env_values == config.env_values


def test_snapshot_carries_data_and_checksum_not_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(RESILIENT)
    monkeypatch.setenv("TEAM", "payments")
    message = compile_snapshot(path, load_registry(), Settings(), 4).message()
    assert set(message) == {"version", "checksum", "config"} and message["version"] == 4
    assert message["checksum"] == checksum(message["config"])
    assert RESILIENT not in orjson.dumps(message).decode()


class _Recorded:
    """A component with start/stop that records them in a shared journal; `fail` makes its start raise."""

    def __init__(self, name: str, journal: list[str], fail: bool = False) -> None:
        self.name, self.journal, self.fail = name, journal, fail

    async def start(self) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


async def test_a_failing_start_stops_what_had_started_and_only_that() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle()
    for component in (_Recorded("a", journal), _Recorded("b", journal), _Recorded("c", journal, fail=True)):
        lifecycle.add(component)
    lifecycle.add(object())  # nothing to start or stop: not managed
    with pytest.raises(RuntimeError, match="c cannot start"):
        await lifecycle.start()
    assert journal == ["start a", "start b", "stop b", "stop a"]
    await lifecycle.stop()  # once only
    assert len(journal) == 4 and len(lifecycle.components) == 3


def test_validate_takes_plain_data_too() -> None:
    """What the admin API will send: a mapping, not YAML text; errors name the source given and the path."""
    data = {"routes": [{"id": "a", "uri": "http://127.0.0.1:9", "filters": ["StripPrefix=x"]}]}
    with pytest.raises(ConfigError) as caught:
        validate(data, load_registry(), Settings(), "admin API")
    assert [(i.source, i.path) for i in caught.value.issues] == [("admin API", "routes[0].filters[0].args.parts")]
    assert caught.value.issues[0].pointer == "/routes/0/filters/0/args/parts"  # data has pointers, not lines
    data["routes"][0]["filters"] = ["StripPrefix=1"]
    assert validate(data, load_registry(), Settings(), "admin API").routes[0].filters[0].args == {"parts": "1"}


@pytest.mark.parametrize(
    ("path", "pointer"),
    [
        ("", ""),
        ("routes", "/routes"),
        ("upstreams.orders.instances[2]", "/upstreams/orders/instances/2"),
        ("routes[0].metadata.a/b~c", "/routes/0/metadata/a~1b~0c"),  # RFC 6901 escapes
    ],
)
def test_an_issue_names_its_place_as_a_json_pointer(path: str, pointer: str) -> None:
    assert ConfigIssue("admin API", path, "bad").pointer == pointer


def test_a_worker_refuses_a_config_that_does_not_match_its_checksum() -> None:
    message = Snapshot.of(_validated(), 2).message()
    assert received_config(message) == _validated()
    message["config"]["routes"][0]["uri"] = "http://evil.example"
    with pytest.raises(ConfigError, match="does not match its checksum"):
        received_config(message)


def test_a_config_that_cannot_travel_as_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    """YAML allows a mapping key that is not text; the hand-out to workers is JSON. Refused with a ConfigError (a
    reload keeps the old version), never a TypeError that would end the supervisor's reload loop."""
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - id: a\n    uri: no://op\n    metadata: {1: one}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="as JSON"):
        compile_snapshot(path, load_registry(), Settings(), 1)


def test_an_error_after_validation_hides_values_from_the_environment() -> None:
    """A plugin's build or start error may quote a value from ${env:...}; it goes to logs and stderr redacted."""
    config = _validated()
    secret = "payments"  # $TEAM in RESILIENT, 8 characters: searched for anywhere in a message
    assert secret in config.env_values
    issue = config.issue(config.path_of(0), f"team key {secret!r} is not valid")
    assert secret not in str(issue) and "<redacted>" in issue.message

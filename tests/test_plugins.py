"""A team's plugin loads from its own distribution without touching gateway/, and bad plugins stop start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.registry import RegistryError, load_registry
from tests.conftest import StartGateway, Upstream
from tests.helpers import fetch, one_route
from tests.plugins import install_example, write_distribution


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example(tmp_path_factory.mktemp("example") / "site")


def test_example_plugin_is_discovered_with_its_distribution(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(example_site))
    registry = load_registry()
    assert "TeamTag" in registry.filters
    assert registry.origins["TeamTag"] == "sluicegate-example-filter"
    assert registry.origins["StripPrefix"] == "sluicegate"


def test_cli_lists_the_plugin(example_site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(example_site)}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "filters"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "TeamTag" in out.stdout and "sluicegate-example-filter" in out.stdout


SPEC_SOURCE = """
from pydantic import Field
from gateway.api import ComponentConfig, FilterSpec

class Config(ComponentConfig):
    flag: bool = Field(True, description="A flag.")

async def _filter(exchange, call_next):
    return await call_next(exchange)

SPEC = FilterSpec(name={name!r}, order={order}, config=Config, build=lambda c, ctx: _filter,
                  summary="test plugin", example={{}})
"""


def _plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: str, name: str, order: int, source: str = ""
) -> None:
    module = f"plug_{dist.replace('-', '_')}"
    write_distribution(
        tmp_path,
        dist,
        {"sluicegate.filters": {name: f"{module}:SPEC"}},
        {module: source or SPEC_SOURCE.format(name=name, order=order)},
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_plugin_named_like_a_builtin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plugin(tmp_path, monkeypatch, "team-clash", "StripPrefix", 977)
    with pytest.raises(RegistryError) as caught:
        load_registry()
    message = str(caught.value)
    assert "clashes with the built-in" in message and "team-clash" in message


# A plugin that records the path it sees, with the same order number as the built-in StripPrefix (901).
PATH_RECORDER = """
from gateway.api import ComponentConfig, FilterSpec

class Config(ComponentConfig):
    pass

async def _filter(exchange, call_next):
    exchange.headers.set("X-Path-Seen", exchange.path)
    return await call_next(exchange)

SPEC = FilterSpec(name="PathRecorder", order=901, config=Config, build=lambda c, ctx: _filter,
                  summary="test plugin", example={})
"""


@pytest.mark.parametrize(
    ("filters", "seen_by_recorder"),
    [('["StripPrefix=1", "PathRecorder"]', "/things"), ('["PathRecorder", "StripPrefix=1"]', "/api/things")],
)
async def test_two_specs_sharing_an_order_load_and_run_in_yaml_order(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    upstream: Upstream,
    start_gateway: StartGateway,
    filters: str,
    seen_by_recorder: str,
) -> None:
    """An order number only names the band (D26): sharing one is no problem, and the route's YAML order decides."""
    _plugin(tmp_path, monkeypatch, "team-recorder", "PathRecorder", 901, source=PATH_RECORDER)
    registry = load_registry()
    assert registry.filters["PathRecorder"].order == registry.filters["StripPrefix"].order == 901
    gw = await start_gateway(one_route(upstream.url, filters))
    reply = await fetch(gw, "/api/things")
    assert reply.status == 200
    assert reply.seen()["path"] == "/things"
    assert reply.upstream_got("X-Path-Seen") == [seen_by_recorder]


def test_order_outside_the_bands_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plugin(tmp_path, monkeypatch, "team-unbanded", "Unbanded", 50)
    with pytest.raises(RegistryError, match="has order 50, outside the bands 100-999") as caught:
        load_registry()
    assert "team-unbanded" in str(caught.value)


def test_plugin_that_fails_to_import_names_its_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plugin(tmp_path, monkeypatch, "team-broken", "Broken", 976, source="raise RuntimeError('boom at import')\n")
    with pytest.raises(RegistryError, match="team-broken") as caught:
        load_registry()
    assert "boom at import" in str(caught.value)


def test_entry_point_must_export_a_spec_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = SPEC_SOURCE.format(name="OtherName", order=975)
    _plugin(tmp_path, monkeypatch, "team-misnamed", "Misnamed", 975, source=source)
    with pytest.raises(RegistryError, match="names must be equal"):
        load_registry()


def test_cli_refuses_to_start_with_a_bad_plugin(tmp_path: Path) -> None:
    write_distribution(
        tmp_path / "site",
        "team-clash",
        {"sluicegate.filters": {"SetStatus": "plug_x:SPEC"}},
        {"plug_x": SPEC_SOURCE.format(name="SetStatus", order=974)},
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", "routes.yaml"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode != 0
    assert "team-clash" in out.stderr and "SetStatus" in out.stderr


def test_cli_lists_a_plugin_sharing_a_builtins_order_without_a_problem(tmp_path: Path) -> None:
    """Two specs with one order number are fine (D26): `sluicegate filters` lists both, by band, and exits 0."""
    write_distribution(
        tmp_path / "site",
        "team-order",
        {"sluicegate.filters": {"OrderSharer": "plug_sharer:SPEC"}},
        {"plug_sharer": SPEC_SOURCE.format(name="OrderSharer", order=901)},
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "filters"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "order" not in out.stderr
    bands = {line.split()[1]: line.split()[0] for line in out.stdout.splitlines() if re.match(r"\s+\d+ \S", line)}
    assert {"OrderSharer", "StripPrefix", "Retry", "CircuitBreaker"} <= set(bands)
    assert bands["OrderSharer"] == bands["StripPrefix"] == "900" and bands["Retry"] == "600"
    assert "in the route's YAML order" in out.stdout
    builtin = subprocess.run(
        [sys.executable, "-m", "gateway", "filters", "--builtin"], env=env, capture_output=True, text=True, timeout=60
    )
    assert builtin.returncode == 0 and "OrderSharer" not in builtin.stdout and "StripPrefix" in builtin.stdout

"""A team's plugin loads from its own distribution without touching gateway/, and bad plugins stop start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from gateway.registry import RegistryError, load_registry
from tests.conftest import StartGateway, Upstream
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


async def test_example_plugin_runs_in_a_route(
    example_site: Path, monkeypatch: pytest.MonkeyPatch, upstream: Upstream, start_gateway: StartGateway
) -> None:
    monkeypatch.syspath_prepend(str(example_site))
    gw = await start_gateway(
        f"routes: [{{id: team, uri: '{upstream.url}', predicates: ['Path=/t/**'], filters: ['TeamTag=payments']}}]"
    )
    async with aiohttp.ClientSession() as session, session.get(gw.url("/t/x")) as resp:
        seen = await resp.json()
        assert resp.headers["X-Team-Served"] == "payments"
    assert ["X-Team", "payments"] in seen["headers"]


def test_cli_lists_the_plugin(example_site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(example_site)}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "filters"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "TeamTag" in out.stdout and "sluicegate-example-filter" in out.stdout


SPEC_SOURCE = """
from pydantic import Field
from gateway.spec import ComponentConfig, FilterSpec

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


def test_two_specs_with_one_order_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plugin(tmp_path, monkeypatch, "team-order", "OrderThief", 901)
    with pytest.raises(RegistryError, match="both claim order 901") as caught:
        load_registry()
    assert "team-order" in str(caught.value)


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


def test_cli_lists_everything_despite_an_order_clash_and_names_the_taken_orders(tmp_path: Path) -> None:
    """`sluicegate filters` is the tool that shows free orders: a clash must not hide the list."""
    write_distribution(
        tmp_path / "site",
        "team-order",
        {"sluicegate.filters": {"OrderThief": "plug_thief:SPEC"}},
        {"plug_thief": SPEC_SOURCE.format(name="OrderThief", order=901)},
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "filters"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    listed = {line.split()[1] for line in out.stdout.splitlines() if re.match(r"\s+\d+ \S", line)}
    assert {"OrderThief", "StripPrefix", "Retry", "CircuitBreaker"} <= listed
    assert "both claim order 901" in out.stderr and "team-order" in out.stderr
    taken = re.search(r"orders taken in band 900 \([^)]*\): ([\d, ]+)", out.stderr)
    assert taken and "901" in taken.group(1).split(", ")
    builtin = subprocess.run(
        [sys.executable, "-m", "gateway", "filters", "--builtin"], env=env, capture_output=True, text=True, timeout=60
    )
    assert builtin.returncode == 0 and "OrderThief" not in builtin.stdout and "StripPrefix" in builtin.stdout

"""Settings of `sluicegate run` (issue 4, "Workers and settings"): one precedence, defaults < --settings file <
SLUICEGATE_* environment < flags, observed on the running process (the data port it serves, the workers /routes
lists); an invalid setting from any source stops start-up with a non-zero status naming the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.ops_helpers import (
    CLIENT_TIMEOUT,
    GUARD,
    ROOT,
    clean_environment,
    listening_hosts,
    open_client,
    routes_yaml,
    run_gateway,
    write_settings,
)
from tests.helpers import free_port

NOOP_ROUTES = routes_yaml({"id": "noop", "uri": "no://op", "predicates": ["Path=/noop"]})


async def served_by(port: int) -> bool:
    conn = await open_client(port)
    if conn is None:
        return False
    conn[1].close()
    return True


async def test_flag_wins_over_environment_wins_over_file(tmp_path: Path) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    settings = {"listen": {"host": "127.0.0.1", "port": file_port}, "workers": 1}
    env = {"SLUICEGATE_LISTEN__PORT": str(env_port), "SLUICEGATE_WORKERS": "2"}
    seen: dict[str, tuple[int, int]] = {}
    cases = {
        "flag": (env, ["--listen", f"127.0.0.1:{flag_port}", "--workers", "3"], flag_port),
        "env": (env, [], env_port),
        "file": ({}, [], file_port),
    }
    for name, (environment, flags, expected_port) in cases.items():
        async with run_gateway(
            tmp_path, NOOP_ROUTES, *flags, port=expected_port, pass_listen=False, settings=settings, env=environment
        ) as gw:
            workers = len((await gw.routes())["workers"])
            async with gw.session.get(gw.url("/noop"), timeout=CLIENT_TIMEOUT) as resp:
                status = resp.status
            others = [p for p in (file_port, env_port, flag_port) if p != expected_port]
            assert [await served_by(p) for p in others] == [False, False], name
            seen[name] = (workers, status)
    assert seen == {"flag": (3, 200), "env": (2, 200), "file": (1, 200)}


@pytest.mark.parametrize(
    ("settings", "env", "flags", "named"),
    [
        ({}, {"SLUICEGATE_WORKERS": "0"}, [], "workers"),
        ({}, {}, ["--workers", "0"], "workers"),
        ({"drain": {"timeout": 0}}, {}, [], "drain.timeout"),
        ({}, {}, ["--drain-timeout", "601"], "drain.timeout"),
        ({"limits": {"max_inflight": 5}}, {}, [], "limits.max_inflight"),
        ({}, {"SLUICEGATE_LIMITS__MAX_IN_FLIGHT": "lots"}, [], "limits.max_in_flight"),
        # A valid file does not hide an invalid environment variable, nor a valid variable an invalid flag.
        ({"workers": 2}, {"SLUICEGATE_DRAIN__DELAY": "-1"}, [], "drain.delay"),
    ],
    ids=["env", "flag", "file", "flag-range", "file-unknown", "env-type", "env-over-valid-file"],
)
def test_an_invalid_setting_stops_start_up_naming_it(
    tmp_path: Path, settings: dict[str, object], env: dict[str, str], flags: list[str], named: str
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(NOOP_ROUTES, encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    command += [
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
        "--settings",
        str(write_settings(tmp_path / "s.yaml", settings)),
    ]
    result = subprocess.run(
        command + flags, capture_output=True, text=True, timeout=GUARD, env=clean_environment(env), cwd=ROOT
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any(f": {named}: " in line for line in errors), result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_flag_is_not_blamed_on_a_valid_settings_file(tmp_path: Path) -> None:
    """The error names where the bad value came from: here the flag, not the file (whose `workers: 2` is fine)."""
    config = tmp_path / "routes.yaml"
    config.write_text(NOOP_ROUTES, encoding="utf-8")
    settings_file = write_settings(tmp_path / "s.yaml", {"workers": 2})
    command = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}"]
    command += ["--admin-listen", f"127.0.0.1:{free_port()}", "--settings", str(settings_file), "--workers", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=GUARD, env=clean_environment(), cwd=ROOT)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if ": workers: " in line]
    assert errors, result.stderr
    assert all(str(settings_file) not in line for line in errors), errors


@pytest.mark.parametrize(
    "source",
    ["env-port", "file-port", "env-host-port", "file-host-port"],
)
async def test_the_admin_listener_stays_on_loopback_when_only_its_port_is_set(tmp_path: Path, source: str) -> None:
    """Setting only the admin port (the documented `SLUICEGATE_ADMIN__LISTEN__PORT=9191`) keeps 127.0.0.1; the
    documented HOST:PORT string form works in the environment and, as for `listen`, in a settings file."""
    admin, data = free_port(), free_port()
    settings: dict[str, object] = {"listen": {"host": "127.0.0.1", "port": data}}
    env: dict[str, str] = {}
    if source == "env-port":
        env["SLUICEGATE_ADMIN__LISTEN__PORT"] = str(admin)
    elif source == "file-port":
        settings["admin"] = {"listen": {"port": admin}}
    elif source == "env-host-port":
        env["SLUICEGATE_ADMIN__LISTEN"] = f"127.0.0.1:{admin}"
    else:
        settings = {"listen": f"127.0.0.1:{data}", "admin": {"listen": f"127.0.0.1:{admin}"}}
    async with run_gateway(
        tmp_path,
        NOOP_ROUTES,
        port=data,
        pass_listen=False,
        admin_port=admin,
        pass_admin_listen=False,
        settings=settings,
        env=env,
    ) as gw:
        admin_hosts, data_hosts = listening_hosts(admin), listening_hosts(data)
        async with gw.session.get(gw.url("/noop"), timeout=CLIENT_TIMEOUT) as resp:
            status = resp.status
    assert admin_hosts == {"127.0.0.1"}
    assert data_hosts == {"127.0.0.1"}
    assert status == 200

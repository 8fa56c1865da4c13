"""Admin API authentication of a real `sluicegate run` (issue 11, item 1, "Authenticate"): everything on the admin
listener but `/health/*` and `/metrics` needs `Authorization: Bearer <token>` (401 problem+json otherwise); tokens
from admin.token / SLUICEGATE_ADMIN__TOKEN, admin.token_file or admin.tokens (name -> token); with none on loopback
a generated token in a 0600 file that is removed at exit; with none off loopback the admin API is disabled (403).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from gateway.admin_token import read_token
from tests.e2e.ops_helpers import ADMIN_TOKEN, GatewayProcess, routes_yaml, run_gateway, wait_ready
from tests.helpers import free_port

ROUTES = routes_yaml({"id": "r", "uri": "http://127.0.0.1:9", "predicates": ["Path=/r/**"]})


def assert_problem(status: int, headers: Mapping[str, str], body: str, expected: int) -> dict[str, object]:
    assert status == expected, body
    assert headers.get("Content-Type", "").startswith("application/problem+json")
    document: dict[str, object] = json.loads(body)
    assert document["status"] == expected
    return document


async def assert_open_paths(gw: GatewayProcess) -> None:
    """Health and metrics answer without any token."""
    for path in ("/health/live", "/health/ready", "/metrics"):
        status, _, _ = await gw.admin_request("GET", path, None)
        assert status == 200, path


async def test_routes_needs_the_bearer_token(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES) as gw:
        status, headers, body = await gw.admin_request("GET", "/routes", None)
        assert_problem(status, headers, body, 401)
        assert headers.get("WWW-Authenticate") == "Bearer"
        for wrong in ("wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
            status, headers, body = await gw.admin_request("GET", "/routes", wrong)
            assert_problem(status, headers, body, 401)
        basic = {"Authorization": f"Basic {ADMIN_TOKEN}"}
        assert (await gw.admin_request("GET", "/routes", None, basic))[0] == 401
        assert (await gw.admin_request("GET", "/anything", None))[0] == 401  # unknown paths too, not 404
        status, _, body = await gw.admin_request("GET", "/routes", ADMIN_TOKEN)
        assert status == 200 and json.loads(body)["routes"]
        await assert_open_paths(gw)
        # The admin API is never on the data port, with or without the token.
        async with gw.session.get(gw.url("/routes"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 404
    assert ADMIN_TOKEN not in gw.stderr() + gw.stdout()


async def test_named_tokens_each_authenticate(tmp_path: Path) -> None:
    settings = {"admin": {"tokens": {"alice": "token-of-alice-123", "bob": "token-of-bob-456"}}}
    async with run_gateway(tmp_path, ROUTES, settings=settings, admin_token=None) as gw:
        for token in ("token-of-alice-123", "token-of-bob-456"):
            assert (await gw.admin_request("GET", "/routes", token))[0] == 200
        assert (await gw.admin_request("GET", "/routes", "alice"))[0] == 401  # the name is not the token
        assert (await gw.admin_request("GET", "/routes", None))[0] == 401
    assert "token-of-alice-123" not in gw.stderr() and "token-of-bob-456" not in gw.stderr()


async def test_token_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin.token"
    secret.write_text("token-from-a-file-789\n", encoding="utf-8")
    settings = {"admin": {"token_file": str(secret)}}
    async with run_gateway(tmp_path, ROUTES, settings=settings, admin_token=None) as gw:
        assert (await gw.admin_request("GET", "/routes", "token-from-a-file-789"))[0] == 200
        assert (await gw.admin_request("GET", "/routes", None))[0] == 401


async def test_unreadable_token_file_refuses_to_start(tmp_path: Path) -> None:
    settings = {"admin": {"token_file": str(tmp_path / "absent.token")}}
    async with run_gateway(tmp_path, ROUTES, settings=settings, admin_token=None, wait_ready=False) as gw:
        assert await gw.wait_exit() != 0
    assert "admin.token_file" in gw.stderr() and "absent.token" in gw.stderr()


async def test_generated_token_file_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # for read_token in this process
    admin = free_port()
    expected = runtime / "sluicegate" / f"admin-{admin}.token"
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    async with run_gateway(tmp_path, ROUTES, admin_port=admin, env=env, admin_token=None) as gw:
        assert stat.S_IMODE(expected.stat().st_mode) == 0o600
        assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700
        token = read_token(admin)
        assert token is not None and len(token) >= 43  # token_urlsafe(32)
        assert (await gw.admin_request("GET", "/routes", token))[0] == 200
        assert (await gw.admin_request("GET", "/routes", None))[0] == 401
        assert str(expected) in gw.stderr()
        assert token not in gw.stderr() + gw.stdout()
        assert await gw.stop() == 0
    assert not expected.exists()


@pytest.mark.parametrize("unsafe", ["world-writable", "someone-else", "symlink"])
async def test_unsafe_token_directory_refused(tmp_path: Path, unsafe: str) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    directory = runtime / "sluicegate"
    if unsafe == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        directory.symlink_to(tmp_path / "elsewhere")
    else:
        directory.mkdir(mode=0o700)
        if unsafe == "world-writable":
            directory.chmod(0o777)
        else:
            if os.getuid() != 0:
                pytest.skip("giving a directory to another user needs root")
            os.chown(directory, 65534, 65534)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    async with run_gateway(tmp_path, ROUTES, env=env, admin_token=None, wait_ready=False) as gw:
        assert await gw.wait_exit() != 0
    errors = [line for line in gw.stderr().splitlines() if "admin token directory" in line]
    assert len(errors) == 1 and str(directory) in errors[0], gw.stderr()
    assert list(directory.iterdir()) == [] if unsafe != "symlink" else not list((tmp_path / "elsewhere").iterdir())


async def test_off_loopback_without_token_serves_only_health(tmp_path: Path) -> None:
    admin = free_port()
    args = ("--admin-listen", f"0.0.0.0:{admin}")  # all interfaces; the test only ever connects to 127.0.0.1
    async with run_gateway(
        tmp_path, ROUTES, *args, admin_port=admin, pass_admin_listen=False, admin_token=None, wait_ready=False
    ) as gw:
        await wait_ready(gw)
        await assert_open_paths(gw)
        for token in (None, "anything"):
            status, headers, body = await gw.admin_request("GET", "/routes", token)
            document = assert_problem(status, headers, body, 403)
            assert document["detail"] == "admin API disabled: set admin.token"
    assert "admin.token" in gw.stderr() and "off loopback" in gw.stderr()


async def test_off_loopback_with_a_token_serves_the_api(tmp_path: Path) -> None:
    admin = free_port()
    args = ("--admin-listen", f"0.0.0.0:{admin}")
    async with run_gateway(tmp_path, ROUTES, *args, admin_port=admin, pass_admin_listen=False) as gw:
        assert (await gw.admin_get("/routes"))[0] == 200
        assert (await gw.admin_request("GET", "/routes", None))[0] == 401

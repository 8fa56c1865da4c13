"""The admin token's helpers (gateway/admin_token.py, gateway/admin.py; issue 11, item 1): where the generated token
lives, which listener hosts count as loopback, and which author a bearer token names. Whole-process checks are in
tests/e2e/test_admin_auth.py."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.admin import AUTHOR, auth_middleware, author_of
from gateway.admin_token import is_loopback, read_token, token_path, write_token
from tests.conftest import start_app


def test_token_path_under_xdg_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert token_path(9191) == tmp_path / "sluicegate" / "admin-9191.token"


def test_token_path_falls_back_to_tmp_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert token_path(9191) == Path(f"/tmp/sluicegate-{os.getuid()}/admin-9191.token")


def test_written_token_is_found_by_its_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert read_token(9191) is None
    path, token = write_token(9191)
    assert read_token(9191) == token and read_token(9192) is None
    assert path.stat().st_mode & 0o777 == 0o600
    _, again = write_token(9191)  # a stale file of an earlier run is replaced
    assert again != token and read_token(9191) == again


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_author_of_names_the_token() -> None:
    tokens = {"alice": "a-123", "bob": "b-456"}
    assert author_of("Bearer b-456", tokens) == "bob"
    assert author_of("bearer a-123", tokens) == "alice"  # the scheme is case-insensitive (RFC 9110)
    for header in ("", "Bearer", "Bearer ", "Bearer a-12", "Basic a-123", "a-123", "Bearer alice"):
        assert author_of(header, tokens) is None, header


async def test_the_author_is_recorded_on_the_request() -> None:
    """What a handler behind the middleware sees as `request[AUTHOR]`: the name of the token used."""

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text=request[AUTHOR])

    app = web.Application(middlewares=[auth_middleware({"alice": "a-123", "bob": "b-456"})])
    app.router.add_get("/whoami", whoami)
    server = await start_app(app)
    try:
        async with aiohttp.ClientSession() as session:
            for token, author in (("a-123", "alice"), ("b-456", "bob")):
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(f"{server.url}/whoami", headers=headers) as resp:
                    assert (resp.status, await resp.text()) == (200, author)
            async with session.get(f"{server.url}/whoami") as resp:
                assert resp.status == 401
        assert len(server.hits) == 2  # the refused request never reached the handler
    finally:
        await server.runner.cleanup()

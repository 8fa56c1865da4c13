"""`sluicegate routes` (issue 11, item 6) as a subprocess against a real `sluicegate run`: apply, list, get, delete,
history, diff and rollback through the admin API; traffic through the data port reaches what was applied; the
token from SLUICEGATE_ADMIN__TOKEN or the gateway's generated token file; exit 1 when the gateway refuses, 2 for
usage, 3 when nothing listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from gateway import routes_cli
from gateway.admin_token import write_token
from gateway.cli import main as cli_main
from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import (
    ADMIN_TOKEN,
    CLIENT_TIMEOUT,
    GUARD,
    ROOT,
    GatewayProcess,
    clean_environment,
    eventually,
    routes_yaml,
    run_gateway,
    start_text_upstream,
)
from tests.helpers import free_port


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def version(self) -> int:
        """The version the command printed last (`... version N`)."""
        found = re.findall(r"version (\d+)", self.stdout)
        assert found, (self.stdout, self.stderr)
        return int(found[-1])


async def sluicegate_routes(
    gw: GatewayProcess | int,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
) -> Result:
    """`python -m gateway routes ARGS --admin http://127.0.0.1:<admin port>` with `token` as SLUICEGATE_ADMIN__TOKEN
    (None: unset) and an empty XDG_RUNTIME_DIR unless `env` says otherwise; `gw` may be just a port."""
    port = gw if isinstance(gw, int) else gw.admin_port
    environment = {"SLUICEGATE_ADMIN__TOKEN": token} if token is not None else {}
    environment.update(env or {})
    command = [sys.executable, "-m", "gateway", "routes", *args, "--admin", f"http://127.0.0.1:{port}"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_environment(environment),
        cwd=ROOT,
    )
    async with asyncio.timeout(GUARD * 4):  # a guard against a hang
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def route_file(path: Path, *routes: Mapping[str, object]) -> str:
    path.write_text(routes_yaml(*routes), encoding="utf-8")
    return str(path)


async def text_through(gw: GatewayProcess, path: str, expected: str) -> str:
    """Poll the data port until `path` answers 200 with `expected` (every worker serving the change)."""

    async def probe() -> str | None:
        async with gw.session.get(gw.url(path), timeout=CLIENT_TIMEOUT) as resp:
            text = await resp.text()
            return text if resp.status == 200 and text == expected else None

    return await eventually(probe, f"{path} answering {expected!r}")


async def status_through(gw: GatewayProcess, path: str, expected: int) -> None:
    async def probe() -> bool | None:
        async with gw.session.get(gw.url(path), timeout=CLIENT_TIMEOUT) as resp:
            return True if resp.status == expected else None

    await eventually(probe, f"{path} answering {expected}")


def dyn_route(uri: str) -> dict[str, object]:
    return {"id": "dyn", "uri": uri, "predicates": ["Path=/dyn/**"], "filters": ["StripPrefix=1"]}


async def test_apply_list_get_and_traffic(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static = await start_text_upstream(start_upstream, "static")
    dynamic = await start_text_upstream(start_upstream, "dynamic")
    routes = routes_yaml({"id": "static", "uri": static.url, "predicates": ["Path=/static/**"]})
    async with run_gateway(tmp_path, routes) as gw:
        before = await sluicegate_routes(gw, "list")
        assert before.status == 0, before.stderr
        applied = await sluicegate_routes(gw, "apply", "-f", route_file(tmp_path / "dyn.yaml", dyn_route(dynamic.url)))
        assert applied.status == 0, applied.stderr
        assert applied.stdout.startswith("applied dyn: version ") and applied.version() == before.version() + 1
        listed = await sluicegate_routes(gw, "list")
        rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:-1]}
        assert rows["dyn"][1:4] == ["dynamic", "0", dynamic.url] and "Path=/dyn/**" in rows["dyn"]
        assert rows["static"][1] == "static"
        assert listed.version() == applied.version()
        assert await text_through(gw, "/dyn/anything", "dynamic") == "dynamic"
        assert dynamic.hits and dynamic.hits[-1].path == "/anything"  # StripPrefix=1 applied
        as_json = json.loads((await sluicegate_routes(gw, "list", "--json")).stdout)
        assert as_json["version"] == applied.version()
        assert {r["id"]: r["source"] for r in as_json["routes"]} == {"static": "static", "dyn": "dynamic"}
        got = await sluicegate_routes(gw, "get", "dyn")
        route = yaml.safe_load(got.stdout)
        assert route["id"] == "dyn" and route["source"] == "dynamic" and route["uri"] == dynamic.url
        # What `get` prints applies back as it is (its `source` is dropped), as a lone route mapping, from stdin.
        again = await sluicegate_routes(gw, "apply", "-f", "-", "--reason", "round trip", stdin=got.stdout)
        assert again.status == 0 and again.version() == applied.version() + 1, again
        binary = await sluicegate_routes(gw, "apply", "-f", "-", stdin="id: b\nuri: !!binary aGk=\n")
        assert binary.status == 1 and "cannot be sent as JSON" in binary.stderr, binary
        missing = await sluicegate_routes(gw, "get", "nope")
        assert missing.status == 1 and "nope" in missing.stderr


async def test_an_invalid_file_names_its_line_and_changes_nothing(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, routes_yaml({"id": "static", "uri": "http://127.0.0.1:9"})) as gw:
        before = await sluicegate_routes(gw, "list", "--json")
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "routes:\n"
            "  - id: fine\n"
            "    uri: http://127.0.0.1:9\n"
            "  - id: broken\n"
            "    uri: http://127.0.0.1:9\n"
            "    filters:\n"
            "      - StripPrefix=-2\n",
            encoding="utf-8",
        )
        for dry_run in ((), ("--dry-run",)):
            refused = await sluicegate_routes(gw, "apply", "-f", str(bad), *dry_run)
            assert refused.status == 1, refused
            assert f"{bad}:7: routes[1].filters[0]" in refused.stderr, refused.stderr
            assert (await sluicegate_routes(gw, "list", "--json")).stdout == before.stdout  # all or nothing
        good = route_file(tmp_path / "good.yaml", {"id": "fine", "uri": "http://127.0.0.1:9"})
        checked = await sluicegate_routes(gw, "apply", "-f", good, "--dry-run")
        assert checked.status == 0 and "nothing changed" in checked.stdout, checked
        assert (await sluicegate_routes(gw, "list", "--json")).stdout == before.stdout
        # Problems the CLI finds itself: the gateway is not asked.
        (tmp_path / "noid.yaml").write_text("- uri: http://127.0.0.1:9\n", encoding="utf-8")
        no_id = await sluicegate_routes(gw, "apply", "-f", str(tmp_path / "noid.yaml"))
        assert no_id.status == 1 and f"{tmp_path / 'noid.yaml'}:1: [0]: every route needs an id" in no_id.stderr
        # A static route changes only by editing the gateway's file: 409, exit 1.
        clash = await sluicegate_routes(
            gw, "apply", "-f", route_file(tmp_path / "s.yaml", {"id": "static", "uri": "http://h"})
        )
        assert clash.status == 1 and "409" in clash.stderr, clash
        assert (await sluicegate_routes(gw, "list", "--json")).stdout == before.stdout


async def test_delete_history_diff_and_rollback(tmp_path: Path, start_upstream: StartUpstream) -> None:
    one = await start_text_upstream(start_upstream, "one")
    two = await start_text_upstream(start_upstream, "two")
    async with run_gateway(tmp_path, routes_yaml({"id": "static", "uri": one.url, "predicates": ["Path=/s/**"]})) as gw:
        first = await sluicegate_routes(gw, "apply", "-f", route_file(tmp_path / "1.yaml", dyn_route(one.url)))
        second = await sluicegate_routes(
            gw, "apply", "-f", route_file(tmp_path / "2.yaml", dyn_route(two.url)), "--reason", "move to two"
        )
        assert second.version() == first.version() + 1
        await text_through(gw, "/dyn/x", "two")
        changed = await sluicegate_routes(gw, "diff")
        assert changed.status == 0, changed.stderr
        assert f"~ dyn: uri: {one.url} -> {two.url}" in changed.stdout.splitlines(), changed.stdout
        added = await sluicegate_routes(gw, "diff", "--from", str(first.version() - 1), "--to", str(first.version()))
        assert "+ dyn" in added.stdout.splitlines(), added.stdout
        deleted = await sluicegate_routes(gw, "delete", "dyn")
        assert deleted.status == 0 and deleted.version() == second.version() + 1, deleted
        await status_through(gw, "/dyn/x", 404)
        assert "- dyn" in (await sluicegate_routes(gw, "diff")).stdout.splitlines()
        assert (await sluicegate_routes(gw, "delete", "dyn")).status == 1  # 404 now
        static = await sluicegate_routes(gw, "delete", "static")
        assert static.status == 1 and "409" in static.stderr
        history = await sluicegate_routes(gw, "history")
        lines = history.stdout.splitlines()
        assert lines[0].split() == ["VERSION", "TIME", "AUTHOR", "REASON"]
        assert any(line.startswith(f"* {deleted.version()} ") for line in lines), history.stdout
        assert any(line.split()[0] == str(second.version()) and line.endswith("move to two") for line in lines)
        assert "sluicegate routes apply -f" in history.stdout and "admin" in history.stdout
        assert lines[-2].endswith("sluicegate routes delete dyn")
        versions = json.loads((await sluicegate_routes(gw, "history", "--json")).stdout)
        assert versions["current"] == deleted.version()
        rolled = await sluicegate_routes(gw, "rollback", str(second.version()), "--reason", "undo the delete")
        assert rolled.status == 0 and rolled.version() == deleted.version() + 1, rolled
        assert await text_through(gw, "/dyn/x", "two") == "two"
        assert "+ dyn" in (await sluicegate_routes(gw, "diff")).stdout.splitlines()
        unknown = await sluicegate_routes(gw, "rollback", "999")
        assert unknown.status == 1 and "404" in unknown.stderr


async def test_the_token_file_the_gateway_wrote_is_found(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    async with run_gateway(
        tmp_path, routes_yaml({"id": "r", "uri": "http://127.0.0.1:9"}), env=env, admin_token=None
    ) as gw:
        found = await sluicegate_routes(gw, "list", token=None, env=env)
        assert found.status == 0 and found.stdout.splitlines()[1].split()[:2] == ["r", "static"], found
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        none = await sluicegate_routes(gw, "list", token=None, env={"XDG_RUNTIME_DIR": str(elsewhere)})
        assert none.status == 2 and "SLUICEGATE_ADMIN__TOKEN" in none.stderr
        assert str(elsewhere / "sluicegate" / f"admin-{gw.admin_port}.token") in none.stderr


async def test_the_readme_demo(tmp_path: Path) -> None:
    """README's demo: the shipped routes.yaml with no admin token configured, then `sluicegate routes apply -f
    examples/dynamic-route.yaml` (token from the generated file), `list`, and a request through the new route
    (the demo backend moved to a free port, in both files)."""
    demo = free_port()
    shipped = (ROOT / "routes.yaml").read_text(encoding="utf-8").replace("127.0.0.1:8081", f"127.0.0.1:{demo}")
    example = (ROOT / "examples" / "dynamic-route.yaml").read_text(encoding="utf-8")
    assert "127.0.0.1:8081" in example
    (tmp_path / "dynamic-route.yaml").write_text(example.replace("127.0.0.1:8081", f"127.0.0.1:{demo}"))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    async with run_gateway(tmp_path, shipped, env=env, admin_token=None) as gw:
        applied = await sluicegate_routes(gw, "apply", "-f", str(tmp_path / "dynamic-route.yaml"), token=None, env=env)
        assert applied.status == 0 and applied.stdout.startswith("applied dyn: version "), applied
        listed = await sluicegate_routes(gw, "list", token=None, env=env)
        assert any(line.split()[:2] == ["dyn", "dynamic"] for line in listed.stdout.splitlines()), listed
        assert any(line.split()[:2] == ["echo", "static"] for line in listed.stdout.splitlines())

        async def echoed() -> dict[str, object] | None:
            async with gw.session.get(gw.url("/dyn/hello"), timeout=CLIENT_TIMEOUT) as resp:
                return await resp.json() if resp.status == 200 else None

        echo = await eventually(echoed, "/dyn/hello through the dynamic route")
        assert echo["path"] == "/hello"
        headers = echo["headers"]
        assert isinstance(headers, list) and ["X-Added-By", "sluicegate routes apply"] in headers


async def test_a_wrong_token_is_refused(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, routes_yaml({"id": "r", "uri": "http://127.0.0.1:9"})) as gw:
        wrong = await sluicegate_routes(gw, "list", token="not-the-token")
        assert wrong.status == 1 and "401" in wrong.stderr and "SLUICEGATE_ADMIN__TOKEN" in wrong.stderr, wrong
        assert "not-the-token" not in wrong.stderr + wrong.stdout


async def test_nothing_listening_exits_3_naming_the_url() -> None:
    port = free_port()
    result = await sluicegate_routes(port, "list")
    assert result.status == 3 and f"http://127.0.0.1:{port}" in result.stderr, result


def test_the_routes_command_of_gateway_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """gateway.cli.main runs the same command (the console script sends `routes` straight to gateway.routes_cli
    without the gateway's imports; both must agree): no sub-command is usage (2), an unreachable API is 3."""
    assert cli_main(["routes"]) == 2
    assert "{list,get,apply,delete,diff,history,rollback}" in capsys.readouterr().out
    monkeypatch.setenv("SLUICEGATE_ADMIN__TOKEN", "some-token")
    port = free_port()
    assert cli_main(["routes", "--admin", f"http://127.0.0.1:{port}", "history"]) == 3
    assert f"cannot connect to the admin API at http://127.0.0.1:{port}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli_main(["routes", "rollback", "not-a-number"])
    assert usage.value.code == 2


async def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else() -> None:
    """urllib follows redirects and resends Authorization: the CLI refuses a redirect (it would leak the token)."""
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"version": 1, "routes": []})

    target = web.Application()
    target.router.add_get("/admin/v1/config", elsewhere)
    target_runner = web.AppRunner(target)
    await target_runner.setup()
    target_port = free_port()
    await web.TCPSite(target_runner, "127.0.0.1", target_port).start()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{target_port}/admin/v1/config")

    origin = web.Application()
    origin.router.add_get("/admin/v1/config", redirect)
    origin_runner = web.AppRunner(origin)
    await origin_runner.setup()
    origin_port = free_port()
    await web.TCPSite(origin_runner, "127.0.0.1", origin_port).start()
    try:
        result = await sluicegate_routes(origin_port, "list")
    finally:
        await origin_runner.cleanup()
        await target_runner.cleanup()
    assert result.status == 1 and "307" in result.stderr, result
    assert seen == []


def test_the_generated_token_is_never_sent_to_another_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token file belongs to this machine's loopback gateway: `--admin` naming another host gets no token from
    it (no traffic is sent: `_admin` only picks the token)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("SLUICEGATE_ADMIN__TOKEN", raising=False)
    write_token(9191)
    assert routes_cli._admin(argparse.Namespace(admin="http://127.0.0.1:9191")).token
    with pytest.raises(routes_cli.CliFailure):
        routes_cli._admin(argparse.Namespace(admin="http://10.1.2.3:9191"))
    with pytest.raises(routes_cli.CliFailure):
        routes_cli._admin(argparse.Namespace(admin="http://gateway.example:9191"))

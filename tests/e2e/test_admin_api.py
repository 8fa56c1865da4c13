"""The native admin API `/admin/v1` on a real `sluicegate run` with two workers and the memory store (issue 11
items 3 and 4): the config with sources and ETag, PUT/DELETE/batch, validate, versions with their authors, diff,
rollback, routes.yaml reloads as versions; every refused request leaves the config, the version list, SCG's route
definitions and the data plane exactly as they were; `#{...}` and `${...}` are inert text; no view and no audit
line shows a secret.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import (
    Recorder,
    call,
    get,
    ok,
    problem,
    scg_body,
    served_by_each,
    start_recorder,
    state,
)
from tests.e2e.ops_helpers import ADMIN_TOKEN, routes_yaml, run_gateway, wait_until
from tests.e2e.test_ops_reload import rewrite

V1 = "/admin/v1"
ALICE, BOB = "token-of-alice-5c1e", "token-of-bob-9d4a"
NAMED = {"admin": {"tokens": {"alice": ALICE, "bob": BOB}}}


def route(uri: str, pattern: str, *filters: Any, **more: Any) -> dict[str, Any]:
    return {"uri": uri, "predicates": [f"Path={pattern}"], "filters": list(filters), **more}


def static_routes(upstream: Recorder) -> str:
    return routes_yaml({"id": "s", "uri": upstream.url, "predicates": ["Path=/s/**"]})


async def test_config_put_and_delete(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, dynamic = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "dynamic")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2") as gw:
        first, second = await call(gw, "GET", f"{V1}/config"), await call(gw, "GET", f"{V1}/config")
        assert first.status == 200 and first.headers["ETag"] == '"1"'
        assert first.text == second.text  # no timestamps, no worker state: the same version gives the same bytes
        config = first.json()
        assert config["version"] == 1
        assert [(r["id"], r["source"]) for r in config["routes"]] == [("s", "static")]

        answer = await call(gw, "PUT", f"{V1}/routes/d", route(dynamic.url, "/d/**", "StripPrefix=1"))
        assert answer.status == 201 and answer.json() == {"version": 2} and answer.headers["ETag"] == '"2"'
        assert set((await served_by_each(gw, "/d/x")).values()) == {(200, "dynamic /x")}
        answer = await call(gw, "PUT", f"{V1}/routes/d", route(dynamic.url, "/d/**"))
        assert answer.status == 200 and answer.json() == {"version": 3}
        assert set((await served_by_each(gw, "/d/x")).values()) == {(200, "dynamic /d/x")}

        first, second = await call(gw, "GET", f"{V1}/config"), await call(gw, "GET", f"{V1}/config")
        assert first.text == second.text and first.headers["ETag"] == '"3"'
        config = first.json()
        assert [(r["id"], r["source"]) for r in config["routes"]] == [("s", "static"), ("d", "dynamic")]
        assert config["version"] == 3

        answer = await call(gw, "DELETE", f"{V1}/routes/d", headers={"If-Match": '"3"'})
        assert answer.status == 200 and answer.json() == {"version": 4}
        assert {status for status, _ in (await served_by_each(gw, "/d/x")).values()} == {404}
        assert [r["id"] for r in (await ok(gw, "GET", f"{V1}/config"))["routes"]] == ["s"]
        assert await get(gw, "/s/x") == (200, "static /s/x")


async def test_batch_is_all_or_nothing(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, dynamic = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "dynamic")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2") as gw:
        await ok(gw, "PUT", f"{V1}/routes/old", route(dynamic.url, "/old/**"), expected=201)
        batch = {
            "operations": [
                {"op": "put", "route": {"id": "a", **route(dynamic.url, "/a/**")}},
                {"op": "put", "route": {"id": "b", **route(dynamic.url, "/b/**")}},
                {"op": "delete", "id": "old"},
            ],
            "reason": "move to a and b",
        }
        refusals = [
            # a valid put, then a delete of an id that is not there: 404, the put is not applied
            ({"operations": [batch["operations"][0], {"op": "delete", "id": "ghost"}]}, 404),
            # a valid put, then an invalid one: 400
            ({"operations": [batch["operations"][0], {"op": "put", "route": {"id": "c", "uri": "nope"}}]}, 400),
            # a valid put, then a static id: 409
            (
                {
                    "operations": [
                        batch["operations"][0],
                        {"op": "put", "route": {"id": "s", **route(static.url, "/x")}},
                    ]
                },
                409,
            ),
        ]
        for body, status in refusals:
            before = await state(gw)
            problem(await call(gw, "POST", f"{V1}/batch", body), status)
            assert await state(gw) == before, body
            assert (await get(gw, "/a/x"))[0] == 404

        assert (await ok(gw, "POST", f"{V1}/batch", batch)) == {"version": 3}
        config = await ok(gw, "GET", f"{V1}/config")
        assert [r["id"] for r in config["routes"]] == ["s", "a", "b"]
        assert set((await served_by_each(gw, "/a/1")).values()) == {(200, "dynamic /a/1")}
        assert set((await served_by_each(gw, "/b/1")).values()) == {(200, "dynamic /b/1")}
        assert (await get(gw, "/old/1"))[0] == 404
        latest = (await ok(gw, "GET", f"{V1}/versions"))["versions"][-1]
        assert latest["version"] == 3 and latest["reason"] == "move to a and b"


async def test_validate_reports_pointers_and_changes_nothing(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static = await start_recorder(start_upstream, "static")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2") as gw:
        before = await state(gw)
        valid = {"operations": [{"op": "put", "route": {"id": "v", **route(static.url, "/v/**", "StripPrefix=1")}}]}
        assert await ok(gw, "POST", f"{V1}/validate", valid) == {"valid": True, "errors": []}
        bad_parts = {"name": "StripPrefix", "args": {"parts": "two"}}
        invalid = {
            "operations": [
                {"op": "put", "route": {"id": "v", **route(static.url, "/v/**", "StripPrefix=1", bad_parts)}}
            ]
        }
        answer = await ok(gw, "POST", f"{V1}/validate", invalid)
        assert answer["valid"] is False
        assert [e["pointer"] for e in answer["errors"]] == ["/operations/0/route/filters/1/args/parts"]
        assert all(isinstance(e["message"], str) and e["message"] for e in answer["errors"])
        # A static id and an unknown delete are reported too, not applied.
        static_id = await ok(gw, "POST", f"{V1}/validate", {"operations": [{"op": "delete", "id": "s"}]})
        assert static_id["valid"] is False
        assert await state(gw) == before
        assert (await get(gw, "/v/x"))[0] == 404


async def test_versions_authors_diff_and_rollback(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, one = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "one")
    two = await start_recorder(start_upstream, "two")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2", settings=NAMED, admin_token=None) as gw:
        gw.admin_token = ALICE  # for gw.routes() (the workers view)
        await ok(gw, "PUT", f"{V1}/routes/a", route(one.url, "/a/**"), expected=201, token=ALICE)  # 2
        await ok(gw, "PUT", f"{V1}/routes/b", route(one.url, "/b/**"), expected=201, token=BOB)  # 3
        await ok(gw, "PUT", f"{V1}/routes/a?reason=move", route(two.url, "/a/**", order=2), token=ALICE)  # 4
        await ok(gw, "DELETE", f"{V1}/routes/b", token=BOB)  # 5

        listed = await ok(gw, "GET", f"{V1}/versions", token=BOB)
        assert listed["current"] == 5
        summary = [(v["version"], v["author"]) for v in listed["versions"]]
        assert summary == [(0, "store"), (1, "file"), (2, "alice"), (3, "bob"), (4, "alice"), (5, "bob")]
        assert listed["versions"][4]["reason"] == "move"
        assert all(set(v) == {"version", "time", "author", "reason", "checksum"} for v in listed["versions"])

        three = await ok(gw, "GET", f"{V1}/versions/3", token=ALICE)
        assert three["version"] == 3 and three["author"] == "bob"
        assert [(r["id"], r["source"], r["uri"]) for r in three["routes"]] == [
            ("s", "static", static.url),
            ("a", "dynamic", one.url),
            ("b", "dynamic", one.url),
        ]
        problem(await call(gw, "GET", f"{V1}/versions/99", token=ALICE), 404)
        problem(await call(gw, "GET", f"{V1}/diff?from=0&to=99", token=ALICE), 404)

        changes = await ok(gw, "GET", f"{V1}/diff?from=3&to=5", token=ALICE)
        assert (changes["from"], changes["to"]) == (3, 5) and changes["added"] == []
        assert [r["id"] for r in changes["removed"]] == ["b"]
        assert changes["changed"] == [
            {"id": "a", "fields": {"order": {"from": 0, "to": 2}, "uri": {"from": one.url, "to": two.url}}}
        ]
        added = await ok(gw, "GET", f"{V1}/diff?from=1&to=3", token=ALICE)
        assert [r["id"] for r in added["added"]] == ["a", "b"] and added["removed"] == added["changed"] == []

        # Rollback to version 3: a new version (6) whose dynamic routes are version 3's.
        assert await ok(gw, "POST", f"{V1}/rollback/3", token=BOB) == {"version": 6}
        config = await ok(gw, "GET", f"{V1}/config", token=ALICE)
        assert [r for r in config["routes"] if r["source"] == "dynamic"] == [
            r for r in three["routes"] if r["source"] == "dynamic"
        ]
        assert set((await served_by_each(gw, "/a/x")).values()) == {(200, "one /a/x")}
        assert set((await served_by_each(gw, "/b/x")).values()) == {(200, "one /b/x")}
        latest = (await ok(gw, "GET", f"{V1}/versions", token=ALICE))["versions"][-1]
        assert (latest["version"], latest["author"]) == (6, "bob")
        # The same config serves as in version 3, so the same checksum (whichever request made the routes).
        assert latest["checksum"] == three["checksum"]

        # Rollback to version 0: no dynamic routes; the static route stays.
        assert await ok(gw, "POST", f"{V1}/rollback/0", token=ALICE) == {"version": 7}
        config = await ok(gw, "GET", f"{V1}/config", token=ALICE)
        assert [(r["id"], r["source"]) for r in config["routes"]] == [("s", "static")]
        assert {status for status, _ in (await served_by_each(gw, "/a/x")).values()} == {404}
        assert await get(gw, "/s/x") == (200, "static /s/x")
        problem(await call(gw, "POST", f"{V1}/rollback/42", token=ALICE), 404)
    assert "version 6 applied: author=bob" in gw.stderr()


async def test_a_reload_is_a_version_and_may_not_take_a_dynamic_id(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    static, dynamic = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "dynamic")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2") as gw:
        await ok(gw, "PUT", f"{V1}/routes/d", route(dynamic.url, "/d/**"), expected=201)  # version 2
        s = {"id": "s", "uri": static.url, "predicates": ["Path=/s/**"]}
        rewrite(gw.config, routes_yaml(s, {"id": "t", "uri": static.url, "predicates": ["Path=/t/**"]}))
        gw.signal(signal.SIGHUP)
        await gw.wait_for_version(3)
        latest = (await ok(gw, "GET", f"{V1}/versions"))["versions"][-1]
        assert (latest["version"], latest["author"]) == (3, "file")
        config = await ok(gw, "GET", f"{V1}/config")
        assert [(r["id"], r["source"]) for r in config["routes"]] == [
            ("s", "static"),
            ("t", "static"),
            ("d", "dynamic"),
        ]
        assert await get(gw, "/t/x") == (200, "static /t/x")
        assert await get(gw, "/d/x") == (200, "dynamic /d/x")
        assert "version 3 applied: author=file" in gw.stderr()

        # A file that adds a static route with the dynamic route's id: refused, naming both; version 3 serves on.
        before = await state(gw)
        rewrite(gw.config, routes_yaml(s, {"id": "d", "uri": static.url, "predicates": ["Path=/other/**"]}))
        gw.signal(signal.SIGHUP)
        await wait_until(lambda: "reload refused" in gw.stderr(), "the reload is refused")
        refused = [line for line in gw.stderr().splitlines() if "reload refused" in line]
        assert len(refused) == 1 and "'d'" in refused[0], refused
        assert "routes.yaml" in refused[0] and "routes[1]" in refused[0], refused  # the static one ...
        assert "dynamic routes" in refused[0], refused  # ... and the dynamic one
        assert await state(gw) == before
        assert await get(gw, "/d/x") == (200, "dynamic /d/x")
        assert await get(gw, "/t/x") == (200, "static /t/x")
        assert (await get(gw, "/other/x"))[0] == 404


def bad_requests(upstream: str) -> list[tuple[str, str, dict[str, Any], int, list[str]]]:
    """(method, path, call arguments, status, pointers) of requests that must change nothing."""
    good = route(upstream, "/n/**")
    marker = route(upstream, "/n/**", {"name": "AddRequestHeader", "args": {"name": "X-Key", "value": "<redacted>"}})
    huge = json.dumps({**good, "metadata": {"pad": "x" * (1 << 20)}}).encode()
    return [
        ("PUT", f"{V1}/routes/n", {"raw": b'{"uri": "http://127.0.0.1:1",'}, 400, [""]),
        ("PUT", f"{V1}/routes/n", {"raw": b"\xff\xfe not json"}, 400, [""]),
        ("PUT", f"{V1}/routes/n", {"body": ["a", "list"]}, 400, [""]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "predicates": "Path=/n/**"}}, 400, ["/predicates"]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "order": "first"}}, 400, ["/order"]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "colour": "red"}}, 400, ["/colour"]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "filters": ["NoSuchFilter=1"]}}, 400, ["/filters/0"]),
        ("PUT", f"{V1}/routes/n", {"body": route(upstream, "/n/**", "StripPrefix=-1")}, 400, ["/filters/0/args/parts"]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "id": "other"}}, 400, ["/id"]),
        ("PUT", f"{V1}/routes/n", {"body": marker}, 400, ["/filters/0/args/value"]),
        ("PUT", f"{V1}/routes/n", {"body": {**good, "enabled": False}}, 400, ["/enabled"]),
        ("PUT", f"{V1}/routes/d", {"body": {**good, "enabled": "false"}}, 400, ["/enabled"]),
        ("PUT", f"{V1}/routes/n", {"raw": huge}, 413, []),
        ("PUT", f"{V1}/routes/n", {"body": good, "headers": {"If-Match": '"1"'}}, 412, []),
        ("PUT", f"{V1}/routes/s", {"body": good}, 409, ["/id"]),
        ("DELETE", f"{V1}/routes/s", {}, 409, ["/id"]),
        ("DELETE", f"{V1}/routes/ghost", {}, 404, ["/id"]),
        ("POST", f"{V1}/batch", {"body": {"operations": []}}, 400, ["/operations"]),
        ("POST", f"{V1}/batch", {"body": {"operations": [{"op": "patch", "id": "d"}]}}, 400, ["/operations/0/op"]),
        (
            "POST",
            f"{V1}/batch",
            {"body": {"operations": [{"op": "put", "route": marker | {"id": "n"}}]}},
            400,
            ["/operations/0/route/filters/0/args/value"],
        ),
        ("POST", f"{V1}/batch", {"raw": huge}, 413, []),
        ("POST", f"{V1}/rollback/77", {}, 404, []),
        ("POST", f"{V1}/rollback/0", {"headers": {"If-Match": '"1"'}}, 412, []),
        ("POST", "/actuator/gateway/routes/n", {"raw": b"{nope"}, 400, [""]),
        ("POST", "/actuator/gateway/routes/n", {"body": scg_body("ftp://127.0.0.1:1", "/n/**")}, 400, ["/uri"]),
        ("POST", "/actuator/gateway/routes/s", {"body": scg_body(upstream, "/n/**")}, 409, ["/id"]),
        ("POST", "/actuator/gateway/routes/n", {"body": marker}, 400, ["/filters/0/args/value"]),
        ("POST", "/actuator/gateway/routes/n", {"raw": huge}, 413, []),
        ("POST", "/actuator/gateway/routes", {"body": {"id": "n", **good}}, 400, [""]),
        ("DELETE", "/actuator/gateway/routes/ghost", {}, 404, ["/id"]),
    ]


async def test_bad_input_changes_nothing(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, dynamic = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "dynamic")
    async with run_gateway(tmp_path, static_routes(static), "--workers", "2") as gw:
        await ok(gw, "PUT", f"{V1}/routes/d", route(dynamic.url, "/d/**"), expected=201)  # version 2
        before = await state(gw)
        for method, path, arguments, status, pointers in bad_requests(dynamic.url):
            document = problem(await call(gw, method, path, **arguments), status)
            assert [e["pointer"] for e in document.get("errors", [])] == pointers, (method, path, document)
            assert await state(gw) == before, (method, path)
            assert await get(gw, "/d/x") == (200, "dynamic /d/x")
            assert await get(gw, "/s/x") == (200, "static /s/x")
            assert (await get(gw, "/n/x"))[0] == 404
        assert "version 3" not in gw.stderr()


async def test_two_writers_with_the_same_if_match_one_wins(tmp_path: Path, start_upstream: StartUpstream) -> None:
    one, two = await start_recorder(start_upstream, "one"), await start_recorder(start_upstream, "two")
    async with run_gateway(tmp_path, static_routes(one), "--workers", "2") as gw:
        for round_ in range(5):
            current = (await ok(gw, "GET", f"{V1}/versions"))["current"]
            tag = {"If-Match": f'"{current}"'}
            answers = await asyncio.gather(
                call(gw, "PUT", f"{V1}/routes/w", route(one.url, "/w/**"), headers=tag),
                call(gw, "PUT", f"{V1}/routes/w", route(two.url, "/w/**"), headers=tag),
            )
            statuses = sorted(a.status for a in answers)
            assert statuses in ([200, 412], [201, 412]), (round_, [a.text for a in answers])
            winner = one if answers[0].status != 412 else two
            problem(next(a for a in answers if a.status == 412), 412)
            assert (await ok(gw, "GET", f"{V1}/versions"))["current"] == current + 1
            assert set((await served_by_each(gw, "/w/x")).values()) == {(200, f"{winner.name} /w/x")}


async def test_expressions_are_inert_text(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_recorder(start_upstream, "up")
    witness = tmp_path / "spel-was-evaluated"
    spel = f"#{{T(java.lang.Runtime).getRuntime().exec('touch {witness}')}}"
    texts = {"X-Spel": spel, "X-Property": "${java.version}", "X-Env": "${env:HOME}", "X-Mixed": "a#{1+1}b${x}"}
    async with run_gateway(tmp_path, static_routes(upstream), "--workers", "2") as gw:
        filters = [{"name": "AddRequestHeader", "args": {"name": k, "value": v}} for k, v in texts.items()]
        await ok(gw, "PUT", f"{V1}/routes/e", route(upstream.url, "/e/**", *filters), expected=201)
        body = scg_body(upstream.url, "/scg/**")
        body["filters"] = [{"name": "AddRequestHeader", "args": {"_genkey_0": "X-Spel", "_genkey_1": spel}}]
        assert (await call(gw, "POST", "/actuator/gateway/routes/scg", body)).status == 201
        for pid, answer in (await served_by_each(gw, "/e/x")).items():
            assert answer == (200, "up /e/x"), pid
            for name, value in texts.items():
                assert upstream.header("/e/x", name) == [value], name
        assert await get(gw, "/scg/y") == (200, "up /scg/y")
        assert upstream.header("/scg/y", "X-Spel") == [spel]
        config = await ok(gw, "GET", f"{V1}/config")
        shown = next(r for r in config["routes"] if r["id"] == "e")["filters"]
        assert [f["args"]["value"] for f in shown] == list(texts.values())
    assert not witness.exists()


SECRET_ENV = "env-s3cret-4f1d-value"
SECRET_LITERAL = "s3cr3t"


async def test_no_view_and_no_audit_line_shows_a_secret(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_recorder(start_upstream, "up")
    routes = routes_yaml(
        {
            "id": "s",
            "uri": upstream.url,
            "predicates": ["Path=/s/**"],
            "filters": ["SetRequestHeader=X-Api-Key, ${env:E2E_SECRET}"],
        }
    )
    async with run_gateway(tmp_path, routes, "--workers", "2", env={"E2E_SECRET": SECRET_ENV}) as gw:
        secret_route = route(upstream.url, "/d/**", f"AddRequestHeader=Authorization, Bearer {SECRET_LITERAL}")
        await ok(gw, "PUT", f"{V1}/routes/d", secret_route, expected=201)  # version 2
        scg = scg_body(upstream.url, "/scg/**")
        scg["filters"] = [
            {
                "name": "AddRequestHeader",
                "args": {"_genkey_0": "Authorization", "_genkey_1": "Bearer " + SECRET_LITERAL},
            }
        ]
        assert (await call(gw, "POST", "/actuator/gateway/routes/scg", scg)).status == 201  # version 3
        # version 4: d changed, with a reason that quotes the env secret (shown nowhere either)
        await ok(gw, "PUT", f"{V1}/routes/d?reason=rotate%20{SECRET_ENV}", {**secret_route, "order": 1})
        # The secrets are live on the data path ...
        assert await get(gw, "/s/x") == (200, "up /s/x") and upstream.header("/s/x", "X-Api-Key") == [SECRET_ENV]
        assert await get(gw, "/d/x") == (200, "up /d/x")
        assert upstream.header("/d/x", "Authorization") == [f"Bearer {SECRET_LITERAL}"]
        # ... and in no view.
        views = [
            "/actuator/gateway/routes",
            "/actuator/gateway/routedefinitions",
            "/actuator/gateway/globalfilters",
            *(f"/actuator/gateway/routes/{i}" for i in ("s", "d", "scg")),
            *(f"/actuator/gateway/routes/{i}/combinedfilters" for i in ("s", "d", "scg")),
            f"{V1}/config",
            f"{V1}/versions",
            *(f"{V1}/versions/{n}" for n in range(5)),
            *(f"{V1}/diff?from={a}&to={b}" for a in range(5) for b in range(5)),
            "/routes",
        ]
        shown: dict[str, str] = {}
        for path in views:
            answer = await call(gw, "GET", path)
            assert answer.status == 200, (path, answer.text)
            shown[path] = answer.text
        for path, text in shown.items():
            assert SECRET_ENV not in text and SECRET_LITERAL not in text, (path, text)
        assert "<redacted>" in shown[f"{V1}/versions/4"] and "<redacted>" in shown[f"{V1}/diff?from=0&to=4"]
        changed = json.loads(shown[f"{V1}/diff?from=3&to=4"])["changed"]
        assert [c["id"] for c in changed] == ["d"] and set(changed[0]["fields"]) == {"order"}
    audit = [line for line in gw.stderr().splitlines() if "sluicegate.audit" in line]
    assert len(audit) == 4 and "version 4 applied: author=admin" in audit[-1] and "routes=d" in audit[-1], audit
    assert 'reason="rotate <redacted>"' in audit[-1], audit
    output = gw.stderr() + gw.stdout()
    assert SECRET_ENV not in output and SECRET_LITERAL not in output


async def test_chunked_bodies_are_read_whole(tmp_path: Path, start_upstream: StartUpstream) -> None:
    """A body without Content-Length (chunked) is read to its end: one just under 1 MiB is taken whole, one over
    it gets 413 (not a parse of whatever arrived first)."""
    upstream = await start_recorder(start_upstream, "up")

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1 << 16):
            yield data[start : start + (1 << 16)]

    async with run_gateway(tmp_path, static_routes(upstream), "--workers", "2") as gw:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        pad = "x" * 1_000_000
        near = json.dumps({**route(upstream.url, "/c/**"), "metadata": {"pad": pad}}).encode()
        assert len(near) < 1 << 20
        async with gw.session.put(gw.admin_url(f"{V1}/routes/c"), data=chunked(near), headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        assert await get(gw, "/c/x") == (200, "up /c/x")

        before = await state(gw)
        over = json.dumps({**route(upstream.url, "/o/**"), "metadata": {"pad": pad + "x" * (1 << 16)}}).encode()
        async with gw.session.put(gw.admin_url(f"{V1}/routes/o"), data=chunked(over), headers=headers) as resp:
            assert resp.status == 413, await resp.text()
        assert await state(gw) == before
        assert (await get(gw, "/o/x"))[0] == 404

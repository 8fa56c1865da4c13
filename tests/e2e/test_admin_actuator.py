"""SCG's actuator API on a real `sluicegate run` with two workers (issue 11 item 2): a route POSTed with SCG's own
RouteDefinition body serves in every worker as soon as the API answers (no refresh), POST of an existing dynamic
id replaces it, static ids are refused with 409, `POST routes` is all or nothing, and the read views keep SCG's
JSON shapes. At equal `order` a static route matches before a dynamic one.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import (
    call,
    get,
    ok,
    problem,
    scg_body,
    served_by_each,
    start_recorder,
    state,
)
from tests.e2e.ops_helpers import routes_yaml, run_gateway

A = "/actuator/gateway"


async def test_a_posted_route_serves_in_every_worker_at_once_and_is_replaced_by_a_second_post(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    static, first = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "first")
    second = await start_recorder(start_upstream, "second")
    routes = routes_yaml({"id": "s", "uri": static.url, "predicates": ["Path=/s/**"]})
    async with run_gateway(tmp_path, routes, "--workers", "2") as gw:
        answer = await call(gw, "POST", f"{A}/routes/p", scg_body(first.url, "/p/**"))
        assert answer.status == 201, answer.text
        assert answer.headers["Location"] == f"{A}/routes/p"
        # No refresh, no polling: when the API has answered, each worker serves the route (StripPrefix=1 applied).
        assert set((await served_by_each(gw, "/p/x?q=1")).values()) == {(200, "first /x?q=1")}
        assert {w["version"] for w in (await gw.routes())["workers"]} == {2}
        assert (await call(gw, "POST", f"{A}/refresh")).status == 200

        # POST of the same id replaces the route (SCG would add a second one).
        answer = await call(gw, "POST", f"{A}/routes/p", scg_body(second.url, "/p/**"))
        assert answer.status == 201, answer.text
        listed = await ok(gw, "GET", f"{A}/routes")
        assert [r["route_id"] for r in listed] == ["s", "p"]
        assert [r["uri"] for r in listed if r["route_id"] == "p"] == [second.url]
        assert [d["id"] for d in await ok(gw, "GET", f"{A}/routedefinitions")] == ["s", "p"]
        assert set((await served_by_each(gw, "/p/y")).values()) == {(200, "second /y")}

        # A static id: 409, nothing changed anywhere.
        before = await state(gw)
        document = problem(await call(gw, "POST", f"{A}/routes/s", scg_body(second.url, "/s/**")), 409)
        assert "routes.yaml" in document["detail"] and "'s'" in document["detail"]
        assert await state(gw) == before
        assert await get(gw, "/s/z") == (200, "static /s/z")

        # DELETE: 200, then the route is gone everywhere; unknown id 404; static id 409.
        assert (await call(gw, "DELETE", f"{A}/routes/p")).status == 200
        assert {status for status, _ in (await served_by_each(gw, "/p/y")).values()} == {404}
        problem(await call(gw, "GET", f"{A}/routes/p"), 404)
        before = await state(gw)
        problem(await call(gw, "DELETE", f"{A}/routes/p"), 404)
        problem(await call(gw, "DELETE", f"{A}/routes/s"), 409)
        assert await state(gw) == before
        assert await get(gw, "/s/z") == (200, "static /s/z")


async def test_post_routes_is_all_or_nothing(tmp_path: Path, start_upstream: StartUpstream) -> None:
    one, two = await start_recorder(start_upstream, "one"), await start_recorder(start_upstream, "two")
    routes = routes_yaml({"id": "s", "uri": one.url, "predicates": ["Path=/s/**"]})
    async with run_gateway(tmp_path, routes, "--workers", "2") as gw:
        good = {"id": "a", **scg_body(one.url, "/a/**")}
        bad = {"id": "b", **scg_body(two.url, "/b/**")}
        bad["filters"] = [{"name": "StripPrefix", "args": {"_genkey_0": "many"}}]
        before = await state(gw)
        document = problem(await call(gw, "POST", f"{A}/routes", [good, bad]), 400)
        # The pointer names the field as the body wrote it (SCG's _genkey_0 for StripPrefix's parts).
        assert [e["pointer"] for e in document["errors"]] == ["/1/filters/0/args/_genkey_0"], document
        assert await state(gw) == before
        assert (await get(gw, "/a/x"))[0] == 404  # the valid one was not applied either

        fixed = {"id": "b", **scg_body(two.url, "/b/**")}
        assert (await call(gw, "POST", f"{A}/routes", [good, fixed])).status == 200
        assert set((await served_by_each(gw, "/a/x")).values()) == {(200, "one /x")}
        assert set((await served_by_each(gw, "/b/x")).values()) == {(200, "two /x")}
        versions = await ok(gw, "GET", "/admin/v1/versions")
        assert versions["current"] == 2  # one version for the whole array


async def test_read_views_keep_scg_shapes(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_recorder(start_upstream, "up")
    routes = "default-filters:\n  - AddResponseHeader=X-Gateway, sluicegate\n" + routes_yaml(
        {"id": "s", "uri": upstream.url, "predicates": ["Path=/s/**"], "order": 3}
    )
    async with run_gateway(tmp_path, routes, "--workers", "2") as gw:
        body = scg_body(upstream.url, "/p/**", order=5)
        body["filters"].append({"name": "AddRequestHeader", "args": {"_genkey_0": "X-Tag", "_genkey_1": "blue"}})
        assert (await call(gw, "POST", f"{A}/routes/p", body)).status == 201

        links = await ok(gw, "GET", f"{A}/")
        hrefs = {link["href"]: set(link["methods"]) for link in links}
        assert hrefs[f"{A}/routes"] == {"GET", "POST"} and hrefs[f"{A}/routes/{{id}}"] == {"GET", "POST", "DELETE"}
        assert hrefs[f"{A}/refresh"] == {"POST"} and f"{A}/routes/{{id}}/combinedfilters" in hrefs

        listed = await ok(gw, "GET", f"{A}/routes")
        assert [r["route_id"] for r in listed] == ["s", "p"]
        one = await ok(gw, "GET", f"{A}/routes/p")
        assert one == listed[1]
        assert set(one) == {"route_id", "predicate", "filters", "uri", "order", "metadata"}
        assert one["uri"] == upstream.url and one["order"] == 5 and one["metadata"] == {}
        assert "/p/**" in one["predicate"]
        # SCG's verbose filter text, default filters included, sorted by their order.
        assert len(one["filters"]) == 3 and all(f.startswith("[[") and "order = " in f for f in one["filters"])
        assert any("StripPrefix" in f for f in one["filters"]) and any("X-Gateway" in f for f in one["filters"])
        assert any("X-Tag" in f and "blue" in f for f in one["filters"])

        definitions = await ok(gw, "GET", f"{A}/routedefinitions")
        p = definitions[1]
        assert set(p) >= {"id", "uri", "order", "predicates", "filters", "metadata"} and p["id"] == "p"
        assert p["predicates"] == [{"name": "Path", "args": {"patterns": ["/p/**"]}}]
        assert p["filters"][0]["name"] == "StripPrefix" and p["filters"][1]["name"] == "AddRequestHeader"
        assert all(set(c) == {"name", "args"} for c in p["predicates"] + p["filters"])

        combined = await ok(gw, "GET", f"{A}/routes/p/combinedfilters")
        assert isinstance(combined, dict) and len(combined) == 3
        assert all(isinstance(order, int) for order in combined.values())
        assert list(combined.values()) == sorted(combined.values())

        global_filters = await ok(gw, "GET", f"{A}/globalfilters")
        assert len(global_filters) == 1
        [(text, order)] = global_filters.items()
        assert "AddResponseHeader" in text and "X-Gateway" in text and isinstance(order, int)

        route_filters = await ok(gw, "GET", f"{A}/routefilters")
        predicates = await ok(gw, "GET", f"{A}/routepredicates")
        assert "[StripPrefix configClass = StripPrefixConfig]" in route_filters
        assert "[Path configClass = PathConfig]" in predicates
        assert set(route_filters.values()) == {None} and set(predicates.values()) == {None}

        problem(await call(gw, "GET", f"{A}/routes/nope"), 404)
        problem(await call(gw, "GET", f"{A}/routes/nope/combinedfilters"), 404)
        status, text = await get(gw, "/p/x")
        assert (status, text) == (200, "up /x")
        assert upstream.header("/x", "X-Tag") == ["blue"]


async def test_at_equal_order_the_static_route_matches_first(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, dynamic = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "dynamic")
    routes = routes_yaml({"id": "s", "uri": static.url, "predicates": ["Path=/same/**"], "order": 0})
    async with run_gateway(tmp_path, routes, "--workers", "2") as gw:
        same = {"uri": dynamic.url, "predicates": [{"name": "Path", "args": {"_genkey_0": "/same/**"}}], "order": 0}
        assert (await call(gw, "POST", f"{A}/routes/d", same)).status == 201
        assert set((await served_by_each(gw, "/same/x")).values()) == {(200, "static /same/x")}
        # With a lower order the dynamic route comes first.
        assert (await call(gw, "POST", f"{A}/routes/d", {**same, "order": -1})).status == 201
        assert set((await served_by_each(gw, "/same/x")).values()) == {(200, "dynamic /same/x")}
        # And with a higher one the static route again.
        assert (await call(gw, "POST", f"{A}/routes/d", {**same, "order": 1})).status == 201
        assert set((await served_by_each(gw, "/same/x")).values()) == {(200, "static /same/x")}

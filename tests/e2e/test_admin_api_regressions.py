"""Bugs schemathesis found in the admin API (tests/e2e/test_admin_openapi.py), each pinned against a real
`sluicegate run`: the request it generated, and what the answer must be.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from tests.e2e.ops_helpers import ADMIN_TOKEN, routes_yaml, run_gateway

ROUTES = routes_yaml({"id": "static-r", "uri": "http://127.0.0.1:9", "predicates": ["Path=/r/**"]})
JSON_BODY = {"Content-Type": "application/json"}


async def test_actuator_post_answers_with_the_id_percent_encoded_in_location(
    tmp_path: Path,
) -> None:
    # The Location header held the raw id: aiohttp refused to write "\x10" in a header and dropped the connection
    # after the change had been applied (such an id is now refused: see the test below); a Location is a URI.
    route_id = "a b/é?"
    async with run_gateway(tmp_path, ROUTES) as gw:
        url = gw.admin_url("/actuator/gateway/routes/" + quote(route_id, safe=""))
        body = json.dumps({"uri": "http://127.0.0.1:9", "predicates": ["Path=/x/**"]})
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **JSON_BODY}
        async with gw.session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 201
            assert resp.headers["Location"] == "/actuator/gateway/routes/a%20b%2F%C3%A9%3F"
        async with gw.session.get(gw.admin_url(resp.headers["Location"]), headers=headers) as found:
            assert found.status == 200
            assert (await found.json())["route_id"] == route_id


async def test_a_version_in_unicode_digits_is_a_bad_request(tmp_path: Path) -> None:
    # "²" is a digit to str.isdigit but not to int(): versions/{n}, diff's from and to, rollback/{n} and If-Match
    # answered 500.
    async with run_gateway(tmp_path, ROUTES) as gw:
        for method, path, headers in (
            ("GET", "/admin/v1/versions/%C2%B2", {}),
            ("GET", "/admin/v1/diff?from=%C2%B2", {}),
            ("GET", "/admin/v1/diff?to=%C2%B2", {}),
            ("POST", "/admin/v1/rollback/%C2%B2", {}),
            ("POST", "/admin/v1/rollback/0", {"If-Match": '"²"'}),
            ("DELETE", "/admin/v1/routes/x", {"If-Match": 'W/"\u0663"'}),  # ARABIC-INDIC DIGIT THREE
        ):
            status, answer, body = await gw.admin_request(method, path, ADMIN_TOKEN, headers)
            assert status == 400, (method, path, headers, body)
            assert answer["Content-Type"] == "application/problem+json"
        assert "Traceback" not in gw.stderr()


async def test_a_body_just_under_the_limit_is_read_whole(tmp_path: Path) -> None:
    # read_json took one `content.read(limit)`, which returns what has arrived so far: a valid body of 1 MB was
    # cut at 640 kB and refused as "not JSON"; a chunked body over the limit was a 400 instead of a 413.
    route = {"uri": "http://127.0.0.1:9", "predicates": ["Path=/big/**"], "metadata": {"note": "x" * 1_000_000}}
    body = json.dumps(route).encode()
    assert len(body) < 1 << 20
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **JSON_BODY}
    async with run_gateway(tmp_path, ROUTES) as gw:
        url = gw.admin_url("/admin/v1/routes/big")
        async with gw.session.put(url, data=body, headers=headers) as resp:
            assert resp.status == 201, await resp.text()

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 65536  # 1.25 MiB of JSON whitespace, sent chunked (no Content-Length)
            yield body

        async with gw.session.put(url, data=chunks(), headers=headers) as resp:
            assert resp.status == 413, await resp.text()


async def test_a_route_id_with_a_line_break_is_refused_and_forges_no_audit_line(tmp_path: Path) -> None:
    # The audit line names the changed ids as written: an id holding "\n<a whole audit line>" wrote that line.
    forged = "2026-12-07 23:00:00,000 INFO sluicegate.audit: version 1 applied: author=root"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **JSON_BODY}
    route = {"uri": "http://127.0.0.1:9", "predicates": ["Path=/x/**"]}
    async with run_gateway(tmp_path, ROUTES) as gw:
        before = await gw.admin_get("/admin/v1/versions")
        for method, path, body, where in (
            ("PUT", "/admin/v1/routes/" + quote("x\n" + forged, safe=""), route, "/id"),
            ("POST", "/actuator/gateway/routes/" + quote("x\r" + forged, safe=""), route, "/id"),
            ("POST", "/admin/v1/batch", {"operations": [{"op": "put", "route": {**route, "id": "x\t"}}]}, None),
        ):
            async with gw.session.request(method, gw.admin_url(path), json=body, headers=headers) as resp:
                document = await resp.json(content_type="application/problem+json")
                assert resp.status == 400, document
                assert document["errors"][0]["pointer"] == (where or "/operations/0/route/id")
        assert await gw.admin_get("/admin/v1/versions") == before  # nothing changed
    assert forged not in gw.stderr()

"""A restart that changes nothing is not a new version (issue 11, item 3: "a routes.yaml reload that changes the
static routes is a new version with author `file`"; nothing else is).

Found by test_admin_changes_load.py: a gateway restarted on the same routes file and the same file store, after a
PUT of a dynamic route, records a version of its own (author `file`, "routes file loaded at start") whose diff
from the stored current version is empty. The version checksum is taken of the config data, which includes where
each route came from for error messages: the put route carries the pointer of the request that put it, the same
route read back from the store at start carries its stored path, so the checksums differ. After a rollback (whose
routes carry stored paths too) the restart keeps the version. A client holding the version for If-Match gets 412
after such a restart although nothing changed. Fixed: dynamic routes serve at their stored paths whichever
request put them, and the published checksum covers what serves only (gateway/versions.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.admin_helpers import ok
from tests.e2e.ops_helpers import GatewayProcess, routes_yaml, run_gateway

ROUTES = routes_yaml({"id": "static", "uri": "http://127.0.0.1:9", "predicates": ["Path=/static/**"]})


async def current_version(gw: GatewayProcess) -> int:
    status, text = await gw.admin_get("/admin/v1/versions")
    assert status == 200, text
    return int(json.loads(text)["current"])


STORE = "store.json"
ROUTE = {"uri": "http://127.0.0.1:9", "predicates": ["Path=/dynamic/**"]}


async def test_restart_after_a_put_keeps_the_version(tmp_path: Path) -> None:
    settings = {"store": {"path": str(tmp_path / STORE)}}
    async with run_gateway(tmp_path, ROUTES, settings=settings) as gw:
        await ok(gw, "PUT", "/admin/v1/routes/dynamic", ROUTE, expected=201)
        assert await current_version(gw) == 2
    async with run_gateway(tmp_path, ROUTES, settings=settings) as again:  # the same file at the same path
        status, text = await again.admin_get("/admin/v1/versions")
        assert status == 200
        assert await current_version(again) == 2, f"a restart changing nothing made a new version: {text}"


async def test_restart_after_a_rollback_keeps_the_version(tmp_path: Path) -> None:
    """The same sequence ending in a rollback (its routes carry stored paths): the restart keeps the version."""
    settings = {"store": {"path": str(tmp_path / STORE)}}
    async with run_gateway(tmp_path, ROUTES, settings=settings) as gw:
        await ok(gw, "PUT", "/admin/v1/routes/dynamic", ROUTE, expected=201)
        await ok(gw, "POST", "/admin/v1/rollback/2")
        assert await current_version(gw) == 3
    async with run_gateway(tmp_path, ROUTES, settings=settings) as again:
        assert await current_version(again) == 3

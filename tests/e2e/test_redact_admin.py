"""The admin routes view of a real `sluicegate run` shows no secret (issue 9, "Secrets shown by GET /routes"): no
value from `${env:...}` wherever it sits, and no value of a credential header, parameter or cookie."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import CLIENT_TIMEOUT, run_gateway

ENV = {
    "RT_TOKEN": "env-t0ken-8c1f-value",
    "RT_TENANT": "env-tenant-5d2e-value",
    "RT_CONTACT": "env-contact-9a7b-value",
    "RT_DEFAULT": "env-default-3e4f-value",
    "RT_ZONE": "env-zone-6b8c-value",
    "RT_PROBE": "env-probe-1f2a-value",
}
LITERALS = {
    "authorization": "lit-bearer-7e21",
    "fault": "lit-fault-key-4c93",
    "param": "lit-param-key-2b57",
    "predicate": "lit-pred-token-8d16",
    "cookie": "lit-cookie-9f30",
}


def routes_file(upstream_url: str) -> str:
    lit = LITERALS
    return f"""
upstreams:
  backend:
    instances: [{{url: '{upstream_url}', zone: '${{env:RT_ZONE}}'}}]
    health-check: {{path: '/${{env:RT_PROBE}}', interval: 1s}}
default-filters:
  - {{name: AddRequestHeader, args: {{name: X-Default, value: '${{env:RT_DEFAULT}}'}}}}
routes:
  - id: api
    uri: lb://backend
    predicates:
      - {{name: Path, args: {{patterns.0: '/api/**', patterns.1: '/${{env:RT_TENANT}}/**'}}}}
    filters:
      - {{name: AddRequestHeader, args: {{name: X-Tenant, value: 't-${{env:RT_TENANT}}'}}}}
      - SetRequestHeader=X-Upstream-Token, ${{env:RT_TOKEN}}
      - 'AddRequestHeadersIfNotPresent=X-Plain:visible, Authorization:Bearer {lit["authorization"]}'
      - {{name: FaultInjection, args: {{abortStatus: 503, header: X-Api-Key, headerValue: {lit["fault"]}}}}}
      - AddRequestParameter=api_key, {lit["param"]}
    metadata:
      team: {{name: payments, contacts: [ops, '${{env:RT_CONTACT}}']}}
  - id: guarded
    uri: {upstream_url}
    predicates: ['Path=/guarded/**', 'Header=X-Auth-Token, {lit["predicate"]}', 'Cookie=SESSION, {lit["cookie"]}']
"""


async def test_the_routes_view_of_a_running_gateway_shows_no_secret(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append((request.path_qs, dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    upstream = await start_upstream(app)
    async with run_gateway(tmp_path, routes_file(upstream.url), env=ENV) as gw:
        async with gw.session.get(gw.url("/api/x"), timeout=CLIENT_TIMEOUT) as resp:
            assert resp.status == 200, await resp.text()
        status, body = await gw.admin_get("/routes")
    # The secrets are live on the data path ...
    path_qs, headers = next((p, h) for p, h in seen if p.startswith("/api/"))
    assert headers["X-Upstream-Token"] == ENV["RT_TOKEN"] and headers["X-Default"] == ENV["RT_DEFAULT"]
    assert headers["Authorization"] == f"Bearer {LITERALS['authorization']}"
    assert f"api_key={LITERALS['param']}" in path_qs
    # ... and nowhere in the admin view.
    assert status == 200, body
    for secret in [*ENV.values(), *LITERALS.values()]:
        assert secret not in body, (secret, body)
    view = json.loads(body)
    assert [r["id"] for r in view["routes"]] == ["api", "guarded"]
    api = view["routes"][0]
    assert api["metadata"]["team"] == {"name": "payments", "contacts": ["ops", "<redacted>"]}
    assert {
        "name": "AddRequestHeadersIfNotPresent",
        "args": {"keyValues": ["X-Plain:visible", "Authorization:<redacted>"]},
    } in api["filters"]
    assert view["upstreams"]["backend"]["instances"][0]["url"] == upstream.url

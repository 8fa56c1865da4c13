"""`upstreams:` and `lb://` validation: accepted shapes, and every refusal with its file, line and YAML path."""

from __future__ import annotations

import json

import pytest

from gateway.app import Gateway
from gateway.config.redact import REDACTED, redacted_routes
from gateway.errors import ConfigError

GOOD = """
upstreams:
  payments:
    instances:
      - {url: http://10.0.0.1:8080, weight: 2, zone: dc1}
      - url: http://10.0.0.2:8080
        zone: dc2
    policy: least_request
    health-check: {path: /ready, interval: 5s, timeout: 500ms, healthy-threshold: 1, unhealthy-threshold: 2}
    outlier-detection: {consecutive-5xx: 3, consecutive-connect-failures: 2, base-ejection-time: 10000,
                        max-ejection-time: 2m, max-ejection-percent: 50}
    zones: {dc1: 70, dc2: 30}
routes:
  - id: pay
    uri: lb://payments
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Gateway().load_text(text, "routes.yaml")
    return [str(issue) for issue in info.value.issues]


def test_a_full_pool_is_accepted_with_its_values() -> None:
    gateway = Gateway()
    config = gateway.load_text(GOOD, "routes.yaml")
    pool = config.upstreams["payments"]
    assert pool.policy == "least_request"
    assert pool.instances[0].weight == 2 and pool.instances[1].weight == 1
    assert pool.health_check is not None and pool.health_check.timeout == 0.5 and pool.health_check.interval == 5
    outlier = pool.outlier_detection
    assert (outlier.base_ejection_time, outlier.max_ejection_time, outlier.max_ejection_percent) == (10, 120, 50)
    assert gateway.dispatcher.table.routes[0].target.pool == "payments"
    assert gateway.pools.pools["payments"].instances[0].ref.authority == "10.0.0.1:8080"


def test_defaults_are_envoys() -> None:
    config = Gateway().load_text(
        "upstreams: {p: {instances: [{url: 'https://a.internal'}]}}\nroutes: [{id: r, uri: 'lb://p'}]", "r.yaml"
    )
    pool = config.upstreams["p"]
    assert pool.policy == "round_robin" and pool.health_check is None and pool.zones is None
    o = pool.outlier_detection
    assert (o.consecutive_5xx, o.consecutive_connect_failures, o.base_ejection_time) == (5, 5, 30)
    assert (o.max_ejection_time, o.max_ejection_percent) == (300, 10)


@pytest.mark.parametrize(
    ("yaml_tail", "where", "reason"),
    [
        ("      - {url: 'ftp://10.0.0.3'}", "routes.yaml:6: upstreams.payments.instances[1].url", "http://host:port"),
        ("      - {url: 'http://u:p@10.0.0.3'}", "upstreams.payments.instances[1].url", "credentials"),
        ("      - {url: 'http://10.0.0.3/api'}", "upstreams.payments.instances[1].url", "no path"),
        ("      - {url: 'http://10.0.0.3:99999'}", "upstreams.payments.instances[1].url", "port"),
        ("      - {url: 'http://10.0.0.3', weight: 0}", "upstreams.payments.instances[1].weight", "greater than"),
        ("      - {url: 'http://10.0.0.3', color: red}", "upstreams.payments.instances[1].color", "unknown key"),
        ("      - {url: 'https://10.0.0.3'}", "routes.yaml:3: upstreams.payments", "one scheme"),
        ("      - {url: 'http://10.0.0.1:8080/'}", "upstreams.payments", "twice"),
        ("    policy: fastest", "upstreams.payments.policy", "round_robin"),
        ("    health-check: {interval: soon}", "upstreams.payments.health-check.interval", "duration"),
        ("    health-check: {path: 'no-slash'}", "upstreams.payments.health-check.path", "start with /"),
        ('    health-check: {path: "/a\\r\\nX: y"}', "upstreams.payments.health-check.path", "visible ASCII"),
        ("    outlier-detection: {max-ejection-percent: 101}", "max-ejection-percent", "less than or equal"),
        ("    zones: {dc9: 1}", "upstreams.payments", "zones without a weight"),
        ("    zones: {default: 0}", "upstreams.payments", "above 0"),
    ],
)
def test_pool_errors_have_locations(yaml_tail: str, where: str, reason: str) -> None:
    text = f"upstreams:\n  payments:\n    instances:\n      - {{url: 'http://10.0.0.1:8080'}}\n{yaml_tail}\n"
    text = text.replace("\n      - {url: 'http://10.0.0.1:8080'}\n", "\n      - {url: 'http://10.0.0.1:8080'}\n\n", 1)
    found = issues(text + "routes: [{id: r, uri: 'lb://payments'}]\n")
    assert any(where in i and reason in i for i in found), found


def test_route_to_an_unknown_pool_and_bad_lb_uris() -> None:
    found = issues(
        """
upstreams: {p: {instances: [{url: 'http://10.0.0.1'}]}}
routes:
  - {id: a, uri: 'lb://nope'}
  - {id: b, uri: 'lb://p/path'}
  - {id: c, uri: 'lb:ws://p'}
  - {id: d, uri: 'lb://'}
"""
    )
    assert any(i.startswith("routes.yaml:4: routes[0].uri: lb://nope: no pool named 'nope'") for i in found), found
    assert any("routes[1].uri" in i and "no path" in i for i in found), found
    assert any("routes[2].uri" in i and "lb:ws" in i for i in found), found
    assert any("routes[3].uri" in i and "pool name" in i for i in found), found


def test_a_broken_pool_does_not_also_blame_its_routes() -> None:
    found = issues("upstreams: {p: {instances: []}}\nroutes: [{id: r, uri: 'lb://p'}]\n")
    assert len(found) == 1 and "upstreams.p.instances" in found[0], found


@pytest.mark.parametrize(
    "upstreams",
    ["[a, b]", "{'bad name': {instances: [{url: 'http://a'}]}}", "{p: [1]}"],
)
def test_malformed_upstreams_sections(upstreams: str) -> None:
    assert issues(f"upstreams: {upstreams}\nroutes: []\n")


def test_the_admin_view_shows_pools_with_env_values_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_B", "http://10.9.9.9:8443")
    text = GOOD.replace("url: http://10.0.0.2:8080", "url: ${env:PAYMENTS_B}")
    view = redacted_routes(Gateway().load_text(text, "routes.yaml"))
    instances = view["upstreams"]["payments"]["instances"]
    assert [i["url"] for i in instances] == ["http://10.0.0.1:8080", REDACTED]
    assert "10.9.9.9" not in json.dumps(view)
    assert view["upstreams"]["payments"]["policy"] == "least_request"

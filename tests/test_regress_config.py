"""Regressions in routes.yaml validation: every problem reported in one pass, at its path, with a usable reason;
header filters that cannot touch framing; a plugin's failing build named after its owner; a loopback-only demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.conftest import StartGateway, Upstream, status_of
from tests.helpers import config_issues, config_only_route, converse, echoed, upstream_paths
from tests.plugins import write_distribution

FRAMING_NAMES = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "content-length", "HOST"]


@pytest.mark.parametrize("name", FRAMING_NAMES)
@pytest.mark.parametrize("filter_name", ["AddRequestHeader", "AddResponseHeader"])
def test_header_filters_refuse_framing_and_connection_fields(filter_name: str, name: str) -> None:
    issues = config_issues(config_only_route(filters=f'["{filter_name}={name},x"]'))
    assert [path for path, _ in issues] == ["routes[0].filters[0].args.name"], issues


@pytest.mark.parametrize("filter_name", ["AddRequestHeader", "AddResponseHeader"])
def test_header_filters_still_accept_ordinary_names(filter_name: str) -> None:
    Gateway().load_text(config_only_route(filters=f'["{filter_name}=X-Hosted-By,x"]'), "routes.yaml")


# -- allow-encoded ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["%2f", "%2F"])
@pytest.mark.parametrize("sent", ["%2F", "%2f"])
async def test_allow_encoded_is_case_insensitive(
    written: str, sent: str, upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(f"""
routes:
  - id: files
    uri: {upstream.url}
    predicates: [Path=/files/**]
    metadata: {{allow-encoded: ["{written}"]}}
""")
    reply = await converse(gw.port, f"GET /files/a{sent}b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(reply.data) == 200, reply.data[:300]
    assert echoed(reply.data)["path"] == "/files/a%2Fb"
    assert upstream_paths(upstream) == ["/files/a%2Fb"]


# -- a plugin whose build function fails ------------------------------------------------------------------------

FAILING_BUILD = """
from gateway.spec import ComponentConfig, FilterSpec

class Config(ComponentConfig):
    pass

def build(config, context):
    raise KeyError("needs setting x")

SPEC = FilterSpec(name="KeyErrorOnBuild", order=973, config=Config, build=build, summary="test plugin", example={})
"""


def test_a_plugin_build_raising_is_a_config_error_naming_route_filter_and_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "team-keyerror",
        {"sluicegate.filters": {"KeyErrorOnBuild": "plug_team_keyerror:SPEC"}},
        {"plug_team_keyerror": FAILING_BUILD},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    issues = config_issues("routes:\n  - id: r\n    uri: no://op\n    filters: [StripPrefix=1, KeyErrorOnBuild]\n")
    found = dict(issues)
    assert "routes[0].filters[1]" in found, issues
    message = found["routes[0].filters[1]"]
    assert "KeyErrorOnBuild" in message and "team-keyerror" in message, message


# -- every problem in one pass -----------------------------------------------------------------------------------


def test_an_invalid_default_filter_and_an_invalid_route_uri_are_both_reported() -> None:
    paths = [
        path for path, _ in config_issues("default-filters: [StripPrefix=x]\nroutes:\n  - id: r\n    uri: lb://x\n")
    ]
    assert "default-filters[0].args.parts" in paths, paths
    assert "routes[0].uri" in paths, paths


def test_an_invalid_uri_and_an_invalid_filter_of_one_route_are_both_reported() -> None:
    found = dict(config_issues("routes:\n  - id: r\n    uri: lb://x\n    filters: [StripPrefix=x]\n"))
    assert "lb://" in found.get("routes[0].uri", ""), found
    assert "routes[0].filters[0].args.parts" in found, found


# -- route metadata the gateway reads ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["responseTimeout", "response_timeout", "ResponseTimeout"])
def test_a_misspelt_response_timeout_is_an_error_naming_the_right_key(key: str) -> None:
    issues = config_issues(f"routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    metadata: {{{key}: 5}}\n")
    assert any(path.startswith("routes[0].metadata") and "response-timeout" in msg for path, msg in issues), issues


def test_free_form_metadata_for_filters_is_still_accepted() -> None:
    text = "routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    metadata: {team: payments, response-timeout: 5}\n"
    Gateway().load_text(text, "routes.yaml")


# -- demo-upstream ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:8081", "[::]:8081", ":8081"])
def test_demo_upstream_listens_on_loopback_only(listen: str) -> None:
    issues = config_issues(f"demo-upstream: {{listen: '{listen}'}}\nroutes: []\n")
    assert issues and all(path.startswith("demo-upstream") for path, _ in issues), issues


@pytest.mark.parametrize("listen", ["127.0.0.1:8081", "[::1]:8081"])
def test_demo_upstream_on_loopback_is_accepted(listen: str) -> None:
    Gateway().load_text(f"demo-upstream: {{listen: '{listen}'}}\nroutes: []\n", "routes.yaml")

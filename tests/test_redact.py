"""Redaction of config views (issue 9, "Secrets shown by GET /routes"): by provenance, every value that came from
`${env:...}` wherever it sits, and by meaning, the values of credential headers, parameters and cookies."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config.definitions import ComponentDef
from gateway.config.provenance import FromEnv
from gateway.config.redact import REDACTED, credential_texts, redact_view, redacted_routes, sensitive_name
from gateway.errors import ConfigError
from tests.plugins import write_distribution

SECRET = "zx9-env-s3cr3t-qw7"  # the value of $SECRET: a hostname- and path-safe token
LITERAL = "lit3ral-cr3d-9f8e"  # a credential written in the file itself


def view_text(text: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in {"SECRET": SECRET, **env}.items():
        monkeypatch.setenv(name, value)
    return json.dumps(redacted_routes(Gateway().load_text(text, "routes.yaml")))


def one_route(*, uri: str = "no://op", predicates: str = "[]", filters: str = "[]", metadata: str = "{}") -> str:
    return (
        "routes:\n  - id: r\n"
        f"    uri: '{uri}'\n    predicates: {predicates}\n    filters: {filters}\n    metadata: {metadata}\n"
    )


POOL = "upstreams:\n  p:\n    instances:\n{instances}routes:\n  - {{id: r, uri: 'lb://p'}}\n"

# -- by provenance: a value from the environment, wherever it sits --------------------------------------------------

FROM_ENV = {
    "route uri": one_route(uri="http://${env:SECRET}:8080"),
    "expanded filter arg": one_route(filters='[{name: AddRequestHeader, args: {name: X-Env, value: "${env:SECRET}"}}]'),
    "part of an expanded arg": one_route(
        filters='[{name: AddRequestHeader, args: {name: X-Tenant, value: "t-${env:SECRET}-1"}}]'
    ),
    "expanded predicate list item": one_route(
        predicates='[{name: Host, args: {patterns: [a.example.org, "${env:SECRET}.example.org"]}}]'
    ),
    "indexed list key": one_route(
        predicates='[{name: Path, args: {patterns.0: /a/**, patterns.1: "/${env:SECRET}/**"}}]'
    ),
    "kebab-case arg name": one_route(
        filters='[{name: FaultInjection, args: {abort-status: 503, header: X-Chaos, header-value: "${env:SECRET}"}}]'
    ),
    "shortcut": one_route(filters='["AddRequestHeader=X-Env, ${env:SECRET}"]'),
    "shortcut list": one_route(predicates='["Path=/a/**, /${env:SECRET}/**"]'),
    "nested metadata list item": one_route(metadata='{team: {contacts: [ops, "${env:SECRET}"]}}'),
    "metadata key": one_route(metadata='{"${env:SECRET}": true}'),
    "route id": "routes:\n  - {id: '${env:SECRET}', uri: 'no://op'}\n",
    "default filter, expanded": "default-filters: [{name: AddRequestHeader, args: {name: X-Env, value: "
    '"${env:SECRET}"}}]\nroutes: []\n',
    "default filter, shortcut": "default-filters: ['SetRequestHeader=X-Env, ${env:SECRET}']\nroutes: []\n",
    "upstream instance url": POOL.format(instances="      - url: 'http://${env:SECRET}:8080'\n"),
    "upstream zone": POOL.format(instances="      - {url: 'http://10.0.0.1:8080', zone: '${env:SECRET}'}\n"),
    "upstream health-check path": "upstreams:\n  p:\n    instances: [{url: 'http://10.0.0.1:8080'}]\n"
    "    health-check: {path: '/${env:SECRET}'}\nroutes:\n  - {id: r, uri: 'lb://p'}\n",
    "Spring application.yml": "spring:\n  cloud:\n    gateway:\n      routes:\n        - {id: r, uri: 'no://op', "
    "filters: [{name: AddRequestHeader, args: {name: X-Env, value: '${env:SECRET}'}}]}\n",
    "YAML alias of an env value": "routes:\n  - id: r\n    uri: no://op\n"
    "    metadata: {copy-source: &s 'k-${env:SECRET}'}\n"
    "    filters: [{name: AddRequestHeader, args: {name: X-Copy, value: *s}}]\n",
}


@pytest.mark.parametrize("text", FROM_ENV.values(), ids=FROM_ENV.keys())
def test_no_value_from_the_environment_is_shown(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = view_text(text, monkeypatch)
    assert SECRET not in shown, shown
    assert REDACTED in shown, shown


def test_a_short_env_value_is_redacted_where_it_is_shown_but_not_searched_for(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "upstreams:\n  p:\n    instances:\n      - url: 'http://10.0.0.1:${env:PORT}'\n"
        "      - {url: 'http://10.0.0.2:8081', weight: '${env:W}'}\n"
        "routes:\n  - {id: r, uri: 'lb://p', metadata: {w: '${env:PORT}'}}\n"
    )
    view = json.loads(view_text(text, monkeypatch, PORT="81", W="7"))
    instances = view["upstreams"]["p"]["instances"]
    assert [i["url"] for i in instances] == [REDACTED, "http://10.0.0.2:8081"]
    assert [i["weight"] for i in instances] == [1, REDACTED]  # validated into a number, still hidden
    assert view["routes"][0]["metadata"] == {"w": REDACTED}


# -- by meaning: credential headers, parameters and cookies, whatever the filter ------------------------------------

BY_MEANING = {
    "AddRequestHeadersIfNotPresent, shortcut": (
        f'["AddRequestHeadersIfNotPresent=X-A:1, Authorization:Bearer {LITERAL}"]'
    ),
    "AddRequestHeadersIfNotPresent, expanded": "[{name: AddRequestHeadersIfNotPresent, args: {keyValues: "
    f"['X-A:1', 'authorization: Bearer {LITERAL}']}}}}]",
    "X-Auth-Key": f'["AddRequestHeader=X-Auth-Key, {LITERAL}"]',
    "X-Access-Key": f'["SetRequestHeader=X-Access-Key, {LITERAL}"]',
    "Proxy-Authorization": f'["AddRequestHeader=Proxy-Authorization, Basic {LITERAL}"]',
    "x-amz-security-token": f'["SetRequestHeader=x-amz-security-token, {LITERAL}"]',
    "upper case": f'["SetRequestHeader=X-API-KEY, {LITERAL}"]',
    "api_key parameter": f'["AddRequestParameter=api_key, {LITERAL}"]',
    "apiKey parameter, expanded": f"[{{name: AddRequestParameter, args: {{name: apiKey, value: {LITERAL}}}}}]",
    "RewriteRequestParameter token": f'["RewriteRequestParameter=access_token, {LITERAL}"]',
    "FaultInjection header": "[{name: FaultInjection, args: {abortStatus: 503, header: Authorization, "
    f"headerValue: {LITERAL}}}}}]",
    "Set-Cookie": f'["SetResponseHeader=Set-Cookie, sid={LITERAL}"]',
    "RewriteResponseHeader Set-Cookie": f'["RewriteResponseHeader=Set-Cookie, {LITERAL}, x"]',
    "AddResponseHeader X-Session-Id": f'["AddResponseHeader=X-Session-Id, {LITERAL}"]',
    "RedirectTo with a token in the query": f'["RedirectTo=302, https://example.org/x?a=1&token={LITERAL}"]',
}
PREDICATES_BY_MEANING = {
    "Header Authorization": f'["Header=Authorization, Bearer {LITERAL}"]',
    "Header X-Auth-Token, expanded": f"[{{name: Header, args: {{header: X-Auth-Token, regexp: {LITERAL}}}}}]",
    "Query access_token": f'["Query=access_token, {LITERAL}"]',
    "Query apikey, expanded": f"[{{name: Query, args: {{param: apikey, regexp: {LITERAL}}}}}]",
    "Cookie SESSION": f'["Cookie=SESSION, {LITERAL}"]',
    "Cookie of any name": f'["Cookie=remember_me, {LITERAL}"]',
}


@pytest.mark.parametrize("filters", BY_MEANING.values(), ids=BY_MEANING.keys())
def test_credential_values_of_filters_are_redacted(filters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = view_text(one_route(filters=filters), monkeypatch)
    assert LITERAL not in shown, shown
    assert REDACTED in shown, shown


@pytest.mark.parametrize("predicates", PREDICATES_BY_MEANING.values(), ids=PREDICATES_BY_MEANING.keys())
def test_credential_values_of_predicates_are_redacted(predicates: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = view_text(one_route(predicates=predicates), monkeypatch)
    assert LITERAL not in shown, shown


def test_credential_metadata_keys_are_redacted_at_any_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = f"{{api-key: {LITERAL}, client: {{password: {LITERAL}x, pin: 1234}}, team: payments}}"
    view = json.loads(view_text(one_route(metadata=metadata), monkeypatch))
    assert view["routes"][0]["metadata"] == {
        "api-key": REDACTED,
        "client": {"password": REDACTED, "pin": 1234},
        "team": "payments",
    }


def test_a_name_value_list_keeps_its_names_and_the_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    filters = f'["AddRequestHeadersIfNotPresent=X-A:1, Authorization:Bearer {LITERAL}"]'
    view = json.loads(view_text(one_route(filters=filters), monkeypatch))
    assert view["routes"][0]["filters"] == [
        {"name": "AddRequestHeadersIfNotPresent", "args": {"keyValues": ["X-A:1", f"Authorization:{REDACTED}"]}}
    ]


def test_positional_genkey_args_count_the_first_as_the_name() -> None:
    # SCG's expanded form may name args `_genkey_0`, `_genkey_1` …: the first is the header or parameter name.
    shown = redact_view(ComponentDef("AddRequestHeader", {"_genkey_0": "X-Api-Key", "_genkey_1": LITERAL}))
    assert shown == {"name": "AddRequestHeader", "args": {"_genkey_0": "X-Api-Key", "_genkey_1": REDACTED}}


# -- what is not a secret stays readable ----------------------------------------------------------------------------


def test_what_is_not_secret_stays_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "upstreams:\n  p:\n    instances: [{url: 'http://10.0.0.1:8080'}]\n"
        "default-filters: ['AddRequestHeader=X-Plain, visible-value']\n"
        "routes:\n  - id: r\n    uri: lb://p\n    predicates: ['Path=/api/**', 'Header=X-Tenant, t-.*']\n"
        "    filters: [RemoveRequestHeader=Authorization, 'MapRequestHeader=Authorization, X-User-Auth',\n"
        "              {name: SetResponseHeader, args: {name: X-Served-By, value: gw-1}}]\n"
        "    metadata: {team: payments, response-timeout: 500}\n"
    )
    view = json.loads(view_text(text, monkeypatch))
    assert REDACTED not in json.dumps(view)
    route = view["routes"][0]
    assert route["predicates"] == ["Path=/api/**", "Header=X-Tenant, t-.*"]
    assert route["filters"] == [
        "RemoveRequestHeader=Authorization",
        "MapRequestHeader=Authorization, X-User-Auth",
        {"name": "SetResponseHeader", "args": {"name": "X-Served-By", "value": "gw-1"}},
    ]
    assert view["default-filters"] == ["AddRequestHeader=X-Plain, visible-value"]
    assert view["upstreams"]["p"]["instances"][0]["url"] == "http://10.0.0.1:8080"


def test_an_env_shortcut_keeps_its_filter_name(monkeypatch: pytest.MonkeyPatch) -> None:
    view = json.loads(view_text(one_route(filters='["AddRequestHeader=X-Env, ${env:SECRET}"]'), monkeypatch))
    assert view["routes"][0]["filters"] == [f"AddRequestHeader={REDACTED}"]


# -- a plugin's filter is covered without declaring anything ---------------------------------------------------------

PLUGIN = """
from pydantic import Field
from gateway.spec import ComponentConfig, FilterSpec

class Config(ComponentConfig):
    header_name: str = Field("X-Team", description="Header to sign into.")
    header_value: str = Field("", description="Its value.")
    client_secret: str = Field("", description="The team's client secret.")
    realm: str = Field("", description="Realm.")

def build(config, context):
    async def passthrough(exchange, call_next):
        return await call_next(exchange)
    return passthrough

SPEC = FilterSpec(name="TeamSigner", order=977, config=Config, build=build, summary="test plugin", example={},
                  shortcut=("headerName", "headerValue"))
"""


@pytest.mark.parametrize(
    "filters",
    [
        f'["TeamSigner=X-Team-Token, {LITERAL}"]',
        f"[{{name: TeamSigner, args: {{headerName: X-Team-Token, headerValue: {LITERAL}}}}}]",
        f"[{{name: TeamSigner, args: {{client-secret: {LITERAL}, realm: team}}}}]",
        '[{name: TeamSigner, args: {headerName: X-Team, headerValue: "${env:SECRET}"}}]',
    ],
)
def test_a_plugin_filter_is_redacted_by_the_same_rules(
    filters: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "team-signer",
        {"sluicegate.filters": {"TeamSigner": "plug_team_signer:SPEC"}},
        {"plug_team_signer": PLUGIN},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    shown = view_text(one_route(filters=filters), monkeypatch)
    assert LITERAL not in shown and SECRET not in shown, shown
    assert "TeamSigner" in shown


# -- the pieces -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "X-Auth-Token",
        "x-amz-security-token",
        "X-Api-Key",
        "api_key",
        "apiKey",
        "X-Auth-Key",
        "X-Access-Key",
        "client_secret",
        "DB_PASSWORD",
        "passwd",
        "X-Credentials",
        "JSESSIONID",
        "Ocp-Apim-Subscription-Key",
        "privateKey",
        "X-JWT",
        "X-Passphrase",
        "X-Auth",
        "sig",
        "X-Bearer",
    ],
)
def test_credential_names(name: str) -> None:
    assert sensitive_name(name)


@pytest.mark.parametrize("name", ["X-Request-Id", "Accept", "X-Forwarded-For", "Host", "lang", "X-Tenant", "keyValues"])
def test_ordinary_names(name: str) -> None:
    assert not sensitive_name(name)


def test_the_env_mark_survives_what_parsers_do_with_strings() -> None:
    value = FromEnv(" a, b=c ")
    pieces = [
        *value.split(","),
        *value.partition("="),
        value.strip(),
        value[1:],
        value.lower(),
        "x" + value,
        value + "x",
        value.replace("a", "z"),
        *value.strip().splitlines(),
    ]
    assert all(isinstance(p, FromEnv) for p in pieces), [type(p) for p in pieces]
    assert isinstance(pickle.loads(pickle.dumps(value)), FromEnv)
    assert not isinstance(str(value), FromEnv)  # str() is how a view deliberately shows a known-safe value


def test_any_view_shape_goes_through_the_one_function() -> None:
    # The admin API to come shows other sections (globalcors, validated models): plain data, no marks left.
    data = {
        "globalcors": {"corsConfigurations": {"/**": {"allowedOrigins": [f"https://{SECRET}.example.org"]}}},
        "auth": {"header": f"Authorization: Bearer {LITERAL}", "headers": {"X-Api-Key": LITERAL}},
    }
    shown = json.dumps(redact_view(data, frozenset({SECRET})))
    assert SECRET not in shown and LITERAL not in shown, shown


# -- error messages: a refused value from the environment is not printed -------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        "['SetStatus=${env:SECRET}']",  # unknown HTTP status '...'
        "['RequestSize=${env:SECRET}']",  # '...' is not a size
        "[{name: StripPrefix, args: {parts: '${env:SECRET}'}}]",  # not an integer
        "['${env:SECRET}=x']",  # unknown filter '...'
    ],
)
def test_an_error_message_does_not_print_a_value_from_the_environment(
    filters: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET", SECRET)
    with pytest.raises(ConfigError) as refused:
        Gateway().load_text(one_route(filters=filters), "routes.yaml")
    text = "\n".join(str(issue) for issue in refused.value.issues)
    assert SECRET not in text and refused.value.issues  # the message still says what was wrong


def test_a_short_env_value_is_hidden_where_a_message_quotes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE", "NOPE")  # shorter than MIN_SEARCHED: hidden where quoted, not searched in prose
    with pytest.raises(ConfigError) as refused:
        Gateway().load_text(one_route(filters="['SetStatus=${env:CODE}']"), "routes.yaml")
    assert "NOPE" not in str(refused.value) and REDACTED in str(refused.value)


# -- generated route ids say nothing about a secret -----------------------------------------------------------------


def test_a_generated_id_hashes_no_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "routes:\n  - uri: no://op\n    predicates: ['Header=X-Api-Key, ${env:SECRET}']\n"
    ids = []
    for value in ("one-secret", "another-secret"):
        monkeypatch.setenv("SECRET", value)
        ids.append(Gateway().load_text(text, "routes.yaml").routes[0].id)
    assert ids[0] == ids[1]  # the same in every environment: the id carries no trace of the value


def test_credential_texts_are_the_values_views_hide_in_raw_routes() -> None:
    routes = [
        {
            "predicates": ["Path=/x/**", "Header=Authorization, Bearer abc", "Cookie=session, s1"],
            "filters": [
                {"name": "AddRequestHeader", "args": {"name": "X-Api-Key", "value": "k-123"}},
                {"name": "AddRequestHeader", "args": {"name": "X-Team", "value": "payments"}},
            ],
            "metadata": {"token": "t-9", "team": "payments"},
        },
        "not a route",
    ]
    assert credential_texts(routes) == {"Bearer abc", "s1", "k-123", "t-9"}

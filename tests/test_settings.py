"""Process settings (gateway/settings.py): the admin listener's loopback default whatever part is set, the
HOST:PORT string form of a listener, and environment values typed by the settings model (issue 9, findings 4, 8).

Whole-process checks of the same rules (what the running gateway binds) are in tests/e2e/test_ops_settings.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import settings as settings_module
from gateway.errors import ConfigError
from gateway.settings import Settings, env_overrides, load_settings


def settings_from(tmp_path: Path, file: dict[str, Any] | None = None, /, **environ: str) -> Settings:
    path = None
    if file is not None:
        path = tmp_path / "settings.yaml"
        path.write_text(yaml.safe_dump(file), encoding="utf-8")
    return load_settings(path, environ={f"SLUICEGATE_{k}": v for k, v in environ.items()})


def issues_of(tmp_path: Path, file: dict[str, Any] | None = None, /, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, file, **environ)
    return [str(issue) for issue in caught.value.issues]


# -- finding 4: the admin listener -----------------------------------------------------------------------------------


def test_admin_port_alone_from_the_environment_stays_on_loopback(tmp_path: Path) -> None:
    listen = settings_from(tmp_path, ADMIN__LISTEN__PORT="9191").admin.listen
    assert (listen.host, listen.port) == ("127.0.0.1", 9191)


def test_admin_port_alone_from_a_file_stays_on_loopback(tmp_path: Path) -> None:
    listen = settings_from(tmp_path, {"admin": {"listen": {"port": 9191}}}).admin.listen
    assert (listen.host, listen.port) == ("127.0.0.1", 9191)


def test_admin_host_alone_keeps_the_admin_port(tmp_path: Path) -> None:
    listen = settings_from(tmp_path, ADMIN__LISTEN__HOST="::1").admin.listen
    assert (listen.host, listen.port) == ("::1", 9090)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:9191", "127.0.0.1", 9191), ("[::1]:9191", "::1", 9191), (":9191", "127.0.0.1", 9191)],
)
def test_admin_listen_host_port_string_from_the_environment(tmp_path: Path, text: str, host: str, port: int) -> None:
    listen = settings_from(tmp_path, ADMIN__LISTEN=text).admin.listen
    assert (listen.host, listen.port) == (host, port)


def test_listen_host_port_strings_in_a_settings_file(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, {"listen": "127.0.0.1:8181", "admin": {"listen": "0.0.0.0:9191"}})
    assert (settings.listen.host, settings.listen.port) == ("127.0.0.1", 8181)
    assert (settings.admin.listen.host, settings.admin.listen.port) == ("0.0.0.0", 9191)


def test_data_listen_port_alone_still_binds_all_interfaces(tmp_path: Path) -> None:
    listen = settings_from(tmp_path, LISTEN=":8181").listen
    assert (listen.host, listen.port) == ("0.0.0.0", 8181)


def test_a_port_from_the_environment_completes_a_host_port_string_of_the_file(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, {"admin": {"listen": "10.1.2.3:9191"}}, ADMIN__LISTEN__PORT="9292")
    assert (settings.admin.listen.host, settings.admin.listen.port) == ("10.1.2.3", 9292)


@pytest.mark.parametrize("text", ["9191", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_bad_host_port_string_is_an_error_naming_the_setting(tmp_path: Path, text: str) -> None:
    issues = issues_of(tmp_path, ADMIN__LISTEN=text)
    assert issues and all(": admin.listen" in issue for issue in issues), issues


# -- finding 8: environment values typed by the model ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["on", "off", "yes", "null", "~", "123", "X-Id"])
def test_a_string_setting_takes_its_environment_value_verbatim(tmp_path: Path, value: str) -> None:
    settings = settings_from(tmp_path, OBSERVABILITY__REQUEST_ID_HEADER=value)
    assert settings.observability.request_id_header == value


@pytest.mark.parametrize("value", ["/etc/ssl/ca:", "123", "a: b", "[x]", "yes"])
def test_a_path_setting_takes_its_environment_value_verbatim(tmp_path: Path, value: str) -> None:
    assert settings_from(tmp_path, UPSTREAM_TLS__CA_FILE=value).upstream_tls.ca_file == Path(value)


def test_a_value_ending_in_a_colon_is_never_a_mapping(tmp_path: Path) -> None:
    issues = issues_of(tmp_path, OBSERVABILITY__REQUEST_ID_HEADER="X-Id:")
    assert len(issues) == 1 and "observability.request_id_header" in issues[0], issues
    assert "pattern" in issues[0] and "valid string" not in issues[0]  # judged as a string, not as a mapping


def test_every_list_setting_takes_a_comma_separated_value() -> None:
    paths = settings_module.list_setting_paths()
    assert ("trusted_proxies",) in paths
    for path in paths:
        key = "SLUICEGATE_" + "__".join(path).upper()
        node: Any = env_overrides({key: " a, b ,,c "})
        for part in path:
            node = node[part]
        assert node == ["a", "b", "c"], path


def test_trusted_proxies_from_the_environment(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, TRUSTED_PROXIES="10.0.0.0/8, 192.168.0.0/16")
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.0.0/16"]


def test_numbers_and_booleans_parse_as_before(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path, WORKERS="2", TIMEOUTS__CONNECT="2.5", TIMEOUTS__RESPONSE="null", MERGE_SLASHES="off"
    )
    assert (settings.workers, settings.timeouts.connect, settings.timeouts.response) == (2, 2.5, None)
    assert settings.merge_slashes is False


@pytest.mark.parametrize(("key", "value"), [("WORKERS", "[1, 2]"), ("WORKERS", "a: 1"), ("MERGE_SLASHES", "maybe")])
def test_a_bad_number_or_boolean_is_an_error_naming_the_setting(tmp_path: Path, key: str, value: str) -> None:
    issues = issues_of(tmp_path, **{key: value})
    assert issues and all(f"environment: {key.lower()}: " in issue for issue in issues), issues


def test_an_unknown_setting_from_the_environment_is_an_error_naming_it(tmp_path: Path) -> None:
    issues = issues_of(tmp_path, LIMITS__MAX_INFLIGHT="5")
    assert any("limits.max_inflight" in issue for issue in issues), issues


def test_a_setting_given_whole_and_by_its_parts_is_an_error_naming_it(tmp_path: Path) -> None:
    issues = issues_of(tmp_path, ADMIN__LISTEN="127.0.0.1:9191", ADMIN__LISTEN__PORT="9292")
    assert len(issues) == 1 and "admin.listen" in issues[0] and "parts" in issues[0], issues


# -- issue 11, item 1: admin tokens ----------------------------------------------------------------------------------


def test_admin_token_from_the_environment_is_the_author_admin(tmp_path: Path) -> None:
    admin = settings_from(tmp_path, ADMIN__TOKEN="env-token-123").admin
    assert admin.credentials() == {"admin": "env-token-123"}


def test_admin_tokens_map_names_the_authors(tmp_path: Path) -> None:
    admin = settings_from(tmp_path, {"admin": {"tokens": {"alice": "a-123", "bob": "b-456"}}}).admin
    assert admin.credentials() == {"alice": "a-123", "bob": "b-456"}


def test_no_admin_token_configured(tmp_path: Path) -> None:
    assert settings_from(tmp_path).admin.credentials() is None


def test_admin_token_sources_are_exclusive(tmp_path: Path) -> None:
    issues = issues_of(tmp_path, {"admin": {"tokens": {"alice": "a-123"}}}, ADMIN__TOKEN="env-token-123")
    assert any("only one of admin.token" in issue for issue in issues), issues


@pytest.mark.parametrize("tokens", [{"bad name": "x-123"}, {"alice": ""}])
def test_admin_tokens_refuse_bad_names_and_empty_tokens(tmp_path: Path, tokens: dict[str, str]) -> None:
    assert issues_of(tmp_path, {"admin": {"tokens": tokens}})


def test_admin_secrets_never_show_in_settings_views(tmp_path: Path) -> None:
    for settings in (
        settings_from(tmp_path, ADMIN__TOKEN="env-secret-123"),
        settings_from(tmp_path, {"admin": {"tokens": {"alice": "file-secret-456"}}}),
    ):
        views = (repr(settings), str(settings), str(settings.model_dump(mode="json")), settings.model_dump_json())
        for view in views:
            assert "env-secret-123" not in view and "file-secret-456" not in view


def test_admin_token_file_errors_name_the_file_not_the_content(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n", encoding="utf-8")
    for path in (tmp_path / "absent.token", empty):
        admin = settings_from(tmp_path, {"admin": {"token_file": str(path)}}).admin
        with pytest.raises(ValueError, match=str(path)):
            admin.credentials()


def test_a_redis_url_that_does_not_parse_is_refused_without_quoting_it() -> None:
    url = "redis://:pa/ss#w0rdLEAK@127.0.0.1:1/0"  # a password with a bare '/': the port does not parse
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"SLUICEGATE_STORE__REDIS_URL": url})
    assert "percent-encode" in str(refused.value) and "w0rdLEAK" not in str(refused.value)


def test_filter_state_takes_the_store_key_prefix_unless_given_its_own() -> None:
    settings = load_settings(None, environ={"SLUICEGATE_STORE__KEY_PREFIX": "fleet-a:"})
    assert settings.state_key_prefix() == "fleet-a:"
    own = load_settings(
        None, environ={"SLUICEGATE_STORE__KEY_PREFIX": "fleet-a:", "SLUICEGATE_STATE__KEY_PREFIX": "s:"}
    )
    assert own.state_key_prefix() == "s:"

"""docs/scg-migration.md stays true: its worked example fails exactly where the text says and passes after."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.registry import BUILTIN_DISTRIBUTION, load_registry

DOC = (Path(__file__).resolve().parent.parent / "docs" / "scg-migration.md").read_text(encoding="utf-8")


def example(name: str) -> str:
    match = re.search(rf"<!-- scg-example: {name} -->\n```yaml\n(.*?)```", DOC, re.S)
    assert match is not None, f"example {name!r} missing from the doc"
    return match.group(1)


def test_the_before_example_fails_exactly_where_the_doc_says() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway().load_text(example("before"), "application.yml")
    paths = sorted({issue.path for issue in caught.value.issues})
    assert paths == [
        "spring.cloud.gateway.httpclient",
        "spring.cloud.gateway.routes[4].filters[0]",
        "spring.cloud.gateway.routes[4].uri",
        "spring.cloud.gateway.routes[5].uri",
    ]
    for path in paths:
        assert f"`{path}`" in DOC


def test_the_after_example_loads() -> None:
    config = Gateway().load_text(example("after"), "application.yml")
    assert [r.id for r in config.routes][:2] == ["rewritepath_route", "header_route"]


def test_every_builtin_is_in_the_tables() -> None:
    registry = load_registry(BUILTIN_DISTRIBUTION)  # an installed plugin is not ours to document
    tables = DOC.split("## Everything else")[0]
    for name, origin in registry.origins.items():
        if origin == "sluicegate":
            assert re.search(rf"\b{name}\b", tables), f"{name} is missing from docs/scg-migration.md"


@pytest.mark.parametrize(
    "row",
    [
        "| duplicate route ids | refused on purpose |",
        "A URI with a path is refused on purpose",
        "| `discovery.locator.*` (routes from the discovery client) | not supported, refused |",
        "| `set-status.original-status-header-name` | not supported, refused |",
        "`upstreams:` goes inside the gateway block, next to `routes:`",
        "| route `id` left out | generated, stable |",
        "| `---` documents, `spring.config.activate.on-profile` | no profiles |",
    ],
)
def test_the_table_says_what_is_refused_on_purpose_and_what_to_do_instead(row: str) -> None:
    assert row in DOC.split("## Regular expressions")[0]


def test_upstreams_go_where_the_doc_says_in_an_application_yml() -> None:
    text = (
        "spring:\n  cloud:\n    gateway:\n      upstreams:\n        orders:\n"
        "          instances: [{url: 'http://127.0.0.1:9'}]\n      routes: [{id: r, uri: 'lb://orders'}]\n"
    )
    assert list(Gateway().load_text(text, "application.yml").upstreams) == ["orders"]

"""gateway.routes_file: the routes file of `sluicegate routes apply`, and the admin API's JSON pointers into the
batch made of it mapped back to the file's YAML paths and lines."""

from __future__ import annotations

import pytest

from gateway.routes_file import read_routes, yaml_path

DOCUMENT = """\
routes:
  - id: a
    uri: http://127.0.0.1:8081
    predicates:
      - Path=/a/**
    filters:
      - StripPrefix=1
      - name: StripPrefix
        args:
          parts: -2
  - id: b
    uri: http://127.0.0.1:8081
    source: dynamic
"""


def test_a_document_with_routes_maps_pointers_to_paths_and_lines() -> None:
    found, issues = read_routes(DOCUMENT, "f.yaml")
    assert issues == []
    assert [r["id"] for r in found.routes] == ["a", "b"]
    assert "source" not in found.routes[1]  # what `get` prints applies back
    issue = found.issue_at("/operations/0/route/filters/1/args/parts", "must be >= 0")
    assert str(issue) == "f.yaml:10: routes[0].filters[1].args.parts: must be >= 0"
    assert found.issue_at("/operations/1/route/uri", "bad").line == 12
    assert str(found.issue_at("/operations/0/route/predicates/0", "x")) == "f.yaml:5: routes[0].predicates[0]: x"


def test_a_field_the_file_lacks_is_placed_at_its_nearest_enclosing_line() -> None:
    found, _ = read_routes(DOCUMENT, "f.yaml")
    issue = found.issue_at("/operations/1/route/metadata/timeout", "missing")
    assert (issue.path, issue.line) == ("routes[1].metadata.timeout", 11)
    assert found.issue_at("/operations/1", "route refused").path == "routes[1]"


def test_pointers_outside_the_routes_are_the_whole_file() -> None:
    found, _ = read_routes(DOCUMENT, "f.yaml")
    for pointer in ("", "/reason", "/operations/7/route/id", "/operations"):
        assert found.issue_at(pointer, "m").path == ""


def test_a_list_and_a_lone_route_use_their_own_paths() -> None:
    listed, issues = read_routes("- id: x\n  uri: http://h\n  filters: [StripPrefix=1]\n", "l.yaml")
    assert issues == []
    assert str(listed.issue_at("/operations/0/route/filters/0", "m")) == "l.yaml:3: [0].filters[0]: m"
    lone, issues = read_routes("id: x\nuri: http://h\nmetadata:\n  a/b: 1\n", "one.yaml")
    assert issues == [] and lone.routes == [{"id": "x", "uri": "http://h", "metadata": {"a/b": 1}}]
    assert str(lone.issue_at("/operations/0/route/metadata/a~1b", "m")) == "one.yaml:4: metadata.a/b: m"


def test_the_data_decides_index_or_key() -> None:
    value = {"args": {0: "zero"}, "list": ["a", "b"]}
    assert yaml_path("r", value, ["args", "0"]) == "r.args.0"
    assert yaml_path("r", value, ["list", "1"]) == "r.list[1]"
    assert yaml_path("r", value, ["list", "5", "k"]) == "r.list[5].k"  # past the data: digits are an index


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("routes:\n  - uri: http://h\n", "t.yaml:2: routes[0]: every route needs an id"),
        ("routes:\n  - id: a\n  - id: a\n", "t.yaml:3: routes[1].id: route id 'a' is also at routes[0]"),
        ("routes: {id: a}\n", "t.yaml:1: routes: routes: is a list of routes"),
        ("routes: []\n", "t.yaml:1: routes: no routes in the file"),
        ("", "t.yaml: no routes in the file"),
        ("- 3\n", "t.yaml:1: [0]: a route is a mapping"),
        ("routes: [{id: a}]\ndefault-filters: []\n", "t.yaml:2: default-filters: apply takes routes only"),
        ("routes: [\n", "t.yaml:2:1: invalid YAML"),
    ],
)
def test_problems_found_before_sending(text: str, expected: str) -> None:
    _, issues = read_routes(text, "t.yaml")
    assert len(issues) == 1 and str(issues[0]).startswith(expected), issues

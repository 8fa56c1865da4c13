"""Docs and repository files that must stay true to the code: docs/filters.md (generated), CODEOWNERS, the Debian
tools CI installs, and statements in README.md / docs/*.md that the code can check."""

from __future__ import annotations

import dataclasses
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

from gateway.docs import render_markdown
from gateway.registry import BUILTIN_DISTRIBUTION, load_registry, scan_registry
from gateway.spec import FilterSpec
from tests.needs import PACKAGES
from tests.plugins import install_example, write_distribution

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "filters.md"


def _text(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def _section(markdown: str, heading: str) -> str:
    """The body of the first `## heading…` section (a heading starting with `heading`, up to the next `## `)."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


# -- docs/filters.md -------------------------------------------------------------------------------------------
def _check_filters_doc() -> None:
    expected = render_markdown(load_registry(distribution=BUILTIN_DISTRIBUTION))
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/filters.md is stale: run `sluicegate filters --builtin --format markdown > docs/filters.md`"
    )


def test_filters_doc_is_current() -> None:
    _check_filters_doc()


def test_filters_doc_check_ignores_installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin in the dev venv — even one with a problem (an order outside the bands) — cannot fail the doc check."""
    monkeypatch.syspath_prepend(str(install_example(tmp_path / "example")))
    source = (
        "from pydantic import Field\nfrom gateway.api import ComponentConfig, FilterSpec\n"
        "class Config(ComponentConfig):\n    flag: bool = Field(True, description='A flag.')\n"
        "async def _filter(exchange, call_next):\n    return await call_next(exchange)\n"
        "SPEC = FilterSpec(name='OrderThief', order=50, config=Config, build=lambda c, ctx: _filter,\n"
        "                  summary='test plugin', example={})\n"
    )
    entry = {"sluicegate.filters": {"OrderThief": "thief:SPEC"}}
    write_distribution(tmp_path / "site", "team-thief", entry, {"thief": source})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    everything, problems = scan_registry()
    assert {"TeamTag", "OrderThief"} <= set(everything.filters) and problems  # the plugins are really visible
    _check_filters_doc()


# -- README: writing a filter ----------------------------------------------------------------------------------
def test_readme_names_every_part_a_filter_spec_requires() -> None:
    section = _section(_text("README.md"), "Writing a filter")
    required = [
        f.name
        for f in dataclasses.fields(FilterSpec)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if f"`{name}`" not in section]
    assert not missing, f"README's 'Writing a filter' does not name the required FilterSpec fields {missing}"
    assert "order" in section and "sluicegate filters" in section, "the README must say how to choose an order"
    assert "YAML order" in section, "the README must say that within a band the route's YAML order decides (D26)"


# -- CODEOWNERS ------------------------------------------------------------------------------------------------
def _codeowners() -> list[tuple[str, str]]:
    rules = []
    for number, line in enumerate(_text(".github/CODEOWNERS").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"(\S+)\s+(@\S+(?:\s+@\S+)*)\s*", line)
        assert match, f".github/CODEOWNERS:{number}: not `pattern <whitespace> @owner`: {line!r}"
        rules.append((match.group(1), match.group(2)))
    return rules


def _matches(pattern: str, path: str) -> bool:
    """GitHub's CODEOWNERS matching for the shapes we use: `*`, `/dir/`, `/file` and globs."""
    if pattern == "*":
        return True
    anchored = pattern.lstrip("/")
    if pattern.endswith("/"):
        return path.startswith(anchored) if pattern.startswith("/") else f"/{anchored}" in f"/{path}"
    return fnmatch(path, anchored) if pattern.startswith("/") else fnmatch(path.rsplit("/", 1)[-1], anchored)


def test_codeowners_gives_every_filter_and_its_test_an_owner() -> None:
    rules = _codeowners()
    files = [
        *(p for p in (ROOT / "filters").glob("*.py")),
        *(p for p in (ROOT / "filters" / "predicates").glob("*.py")),
        *(p for p in (ROOT / "tests" / "filters").glob("test_*.py")),
    ]
    unowned = []
    for file in sorted(files):
        path = file.relative_to(ROOT).as_posix()
        last = [pattern for pattern, _ in rules if _matches(pattern, path)]
        if not last or last[-1] == "*":  # the catch-all is not an owner rule for a filter (last match wins)
            unowned.append(path)
    assert not unowned, f".github/CODEOWNERS has no rule for {unowned}"


# -- Debian tools ----------------------------------------------------------------------------------------------
def _installed_packages(text: str) -> set[str]:
    found: set[str] = set()
    for match in re.finditer(r"apt-get install ((?:-\S+\s+)*)([a-z0-9][a-z0-9.+\-\s]*)", text):
        found |= {word for word in match.group(2).split() if not word.startswith("-")}
    return found


def test_debian_tools_installed_are_the_ones_tests_use() -> None:
    used: set[str] = set()
    for source in (ROOT / "tests").rglob("*.py"):
        for call in re.finditer(r"\btools\(([^)]*)\)", source.read_text(encoding="utf-8")):
            used |= set(re.findall(r"\"([\w-]+)\"", call.group(1)))
    wanted = {PACKAGES.get(tool, tool) for tool in used}
    ci = _text(".ci/run")
    assert _installed_packages(ci) == wanted, ".ci/run installs packages no test needs (or misses one)"
    assert set(re.findall(r"command -v (\S+)", ci)) == used, ".ci/run checks for tools no test needs"
    readme = " ".join(_text("README.md").split())
    assert _installed_packages(readme) == wanted, "README's apt-get lines disagree with what the tests use"
    assert set(PACKAGES) == used, "tests/needs.py maps tools no test uses"


# -- stale statements ------------------------------------------------------------------------------------------
FUTURE = re.compile(r"\b(arriving|not yet|planned|coming soon|until \S+ lands)\b", re.I)


def test_routes_doc_does_not_announce_filters_that_exist() -> None:
    names = set(load_registry(distribution=BUILTIN_DISTRIBUTION).filters)
    stale = [
        sentence
        for sentence in re.split(r"(?<=[.;])\s", " ".join(_text("docs/routes.md").split()))
        if FUTURE.search(sentence) and any(f"`{name}`" in sentence for name in names)
    ]
    assert not stale, f"docs/routes.md announces filters that exist: {stale}"


def test_container_test_docstring_does_not_wait_for_the_admin_listener() -> None:
    from gateway.cli import _parser

    assert _parser().parse_args(["run", "--admin-listen", "127.0.0.1:9"]).admin_listen  # the listener has landed
    docstring = _text("tests/e2e/test_container.py").split('"""')[1]
    assert not re.search(r"until the admin listener lands", " ".join(docstring.split()), re.I)


def test_sizing_uses_the_data_plane_figures() -> None:
    section = _section(_text("docs/operations.md"), "Sizing from the benchmark figures")
    assert "baseline.md" not in section, "size from benchmarks/results/data-plane.md, not the pre-data-plane run"
    table = _section(_text("benchmarks/results/data-plane.md"), "Fixed rate")
    measured = {round(float(m)) for m in re.findall(r"\| gateway[\w-]* \|(?:[^|]*\|){4} ([\d.]+) \(", table)}
    cited = {int(m) for m in re.findall(r"(\d+) µs", section)}
    assert cited and cited <= {v for m in measured for v in range(m - 1, m + 2)}, (cited, measured)


def test_routes_settings_section_points_to_the_environment_and_precedence() -> None:
    section = _section(_text("docs/routes.md"), "Settings")
    assert "SLUICEGATE_" in section and "operations.md#settings" in section
    flat = " ".join(section.split())
    assert re.search(r"defaults? < .*settings.* < .*SLUICEGATE_.* < .*flags", flat), "precedence missing"

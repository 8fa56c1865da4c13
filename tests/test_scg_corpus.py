"""SCG's own YAML, as its reference docs and tests write it, is read as the README promises.

tests/corpus/ holds every YAML example of SCG's WebFlux reference pages (docs-*.yml) and a selection of the
application*.yml files of SCG's own tests (tests-*.yml), one file each, with a header naming where it came from
and what Sluicegate does with it:

    # expect: valid                      it loads
    # expect: refused                    it is refused, and every problem is one we refuse on purpose:
    # reason: <in the issue> | <in docs/scg-migration.md>   ... each reason is used and documented

Left out of the corpus: four examples that are not valid YAML in SCG's docs themselves (`- Host: {segment}...` on
the AddRequestParameter, AddResponseHeader, SetRequestHeader and SetResponseHeader pages), and three that configure
Spring rather than the gateway (`spring.webflux.apiversion`, `server.ssl`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.errors import ConfigError, ConfigIssue
from gateway.registry import BUILTIN_DISTRIBUTION, Registry, load_registry

ROOT = Path(__file__).resolve().parent
CORPUS = sorted((ROOT / "corpus").glob("*.yml"))
MIGRATION_DOC = (ROOT.parent / "docs" / "scg-migration.md").read_text(encoding="utf-8")


@dataclass
class Case:
    valid: bool
    reasons: dict[str, str] = field(default_factory=dict)  # text in the issue -> text in the migration doc

    @classmethod
    def read(cls, path: Path) -> Case:
        case = cls(valid=False)
        expect = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("# "):
                break
            key, _, value = line[2:].partition(": ")
            if key == "expect":
                expect = value
            elif key == "reason":
                issue_text, _, doc_text = value.partition(" | ")
                case.reasons[issue_text] = doc_text
        assert expect in ("valid", "refused"), f"{path.name}: no '# expect: valid|refused' header"
        case.valid = expect == "valid"
        assert case.valid != bool(case.reasons), f"{path.name}: a refused example names its reasons, a valid one none"
        return case


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(BUILTIN_DISTRIBUTION)  # an installed plugin must not change what SCG examples mean


def issues_of(path: Path, registry: Registry) -> list[ConfigIssue]:
    try:
        Gateway(registry=registry).load_text(path.read_text(encoding="utf-8"), path.name)
    except ConfigError as exc:
        return exc.issues
    return []


def test_the_corpus_covers_scg_reference_pages_and_tests() -> None:
    assert len([p for p in CORPUS if p.name.startswith("docs-")]) >= 80
    assert len([p for p in CORPUS if p.name.startswith("tests-")]) >= 5


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_scg_example_is_read_or_refused_for_a_documented_reason(path: Path, registry: Registry) -> None:
    case = Case.read(path)
    for doc_text in case.reasons.values():
        assert doc_text in MIGRATION_DOC, f"{path.name}: the reason {doc_text!r} is not in docs/scg-migration.md"
    issues = issues_of(path, registry)
    described = [f"{issue.path}: {issue.message}" for issue in issues]
    unexplained = [text for text in described if not any(r in text for r in case.reasons)]
    assert not unexplained, f"{path.name}: problems the corpus header does not explain: {unexplained}"
    if case.valid:
        assert not issues, f"{path.name}: a valid example was refused: {described}"
        return
    unused = [r for r in case.reasons if not any(r in text for text in described)]
    assert not unused, f"{path.name}: refused, but not for {unused}"

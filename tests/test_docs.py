"""docs/filters.md is generated from the installed specs; this fails when it is stale."""

from __future__ import annotations

from pathlib import Path

from gateway.docs import render_markdown
from gateway.registry import load_registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "filters.md"


def test_filters_doc_is_current() -> None:
    expected = render_markdown(load_registry())
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/filters.md is stale: run `sluicegate filters --format markdown > docs/filters.md`"
    )

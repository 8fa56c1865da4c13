"""The shared contract test: the kit's `check_contract` runs against every discovered predicate and filter.

One implementation serves both sides: a team's test calls `gateway.testing.check_contract(SPEC)` on its own spec,
and this module calls it on everything installed (built-ins and any plugin in the venv).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.registry import load_registry
from gateway.spec import FilterSpec, PredicateSpec
from gateway.testing import check_contract

REGISTRY = load_registry()
ALL: list[FilterSpec[Any] | PredicateSpec[Any]] = [
    *sorted(REGISTRY.filters.values(), key=lambda s: s.name),
    *sorted(REGISTRY.predicates.values(), key=lambda s: s.name),
]


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
async def test_every_installed_spec_passes_the_plugin_contract(spec: FilterSpec[Any] | PredicateSpec[Any]) -> None:
    await check_contract(spec)

"""The plugin boundary: built-in filters and predicates, and the example plugin, import only `gateway.api`.

The built-ins use nothing a team's plugin could not, so they prove the public API is enough: process-wide state
(metrics, retry budgets, breakers, the dispatcher) comes through `BuildContext.services`, and upstream outcomes
live in `Exchange.outcomes`, not in exchange keys a filter would import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gateway.api

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = ROOT / "filters"
EXAMPLE = ROOT / "examples" / "sluicegate-example-filter" / "sluicegate_example"


def gateway_imports(root: Path) -> Iterator[tuple[str, str, str]]:
    """(file, module, name) of every import of `gateway` or a submodule in any module under `root`.

    Walks the whole tree, so imports inside functions or `if TYPE_CHECKING:` count too; `import gateway.x` is
    reported with the name `*`.
    """
    for path in sorted(root.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "gateway" or node.module.startswith("gateway."):
                    yield from ((where, node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "gateway" or alias.name.startswith("gateway."):
                        yield where, alias.name, "*"


def test_builtins_import_only_the_plugin_api() -> None:
    found = list(gateway_imports(BUILTINS))
    assert any(module == "gateway.api" for _, module, _ in found), "the walk found no import at all"
    other = [f"{where}: from {module} import {name}" for where, module, name in found if module != "gateway.api"]
    assert not other, "built-ins must import from gateway.api only:\n" + "\n".join(other)


def test_example_plugin_imports_only_the_plugin_api() -> None:
    found = list(gateway_imports(EXAMPLE))
    assert found, "the walk found no import at all"
    assert {module for _, module, _ in found} == {"gateway.api"}, found


def test_names_imported_from_the_api_are_all_in_its_all() -> None:
    imported = {name for _, module, name in gateway_imports(BUILTINS) if module == "gateway.api"}
    imported |= {name for _, module, name in gateway_imports(EXAMPLE) if module == "gateway.api"}
    assert imported - {"*"} <= set(gateway.api.__all__), sorted(imported - set(gateway.api.__all__))


def test_api_exports_exactly_its_all_and_no_private_name() -> None:
    exported = gateway.api.__all__
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    assert all(hasattr(gateway.api, name) for name in exported)
    assert not [name for name in exported if name.startswith("_")]
    # Every public name the module binds is in __all__: nothing is exported by accident, nothing half-public.
    bound = {name for name in vars(gateway.api) if not name.startswith("_") and name != "annotations"}
    assert bound == set(exported), sorted(bound ^ set(exported))

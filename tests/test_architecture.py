"""The package's layering, import graph and function size, checked from the source (docs/architecture.md).

Every ``import`` of every module counts, at the top or inside a function, so a cycle cannot be
hidden behind a lazy import. Each checker is a plain function over an import graph, tested on a
small made-up graph first, so a test that passes here is one that could have failed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import har_kedro

PACKAGE = Path(har_kedro.__file__).parent

# Who may import whom: each unit (a subpackage, or a top-level module) and the units it may use.
# Units not listed on the right are forbidden, including every unit above it in docs/architecture.md.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "provenance": set(),
    "datasets": {"config"},
    "data": {"config", "datasets"},
    "demo": {"config", "data"},
    "models": {"config"},
    "training": {"config", "data", "datasets", "models"},
    "inference": {"config", "data", "models"},
    "reporting": {"config", "provenance"},
    "tracking": {"config", "reporting"},
    "pipelines": {"config", "data", "datasets", "demo", "models", "training", "inference", "reporting", "tracking"},
    "pipeline_registry": {"pipelines"},
    "hooks": {"datasets", "pipeline_registry", "provenance", "tracking"},
    "settings": {"hooks", "tracking"},
    "__main__": {"pipeline_registry", "settings"},
    "__init__": set(),
}
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every ``har_kedro`` module ``source`` imports, anywhere in it (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "har_kedro" or name.startswith("har_kedro.")}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports (names that are not modules map to their module)."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = module_name(path, root)
        targets = set()
        for imported in imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py"):
            while imported not in modules and "." in imported:  # ``from pkg.mod import symbol``
                imported = imported.rsplit(".", 1)[0]
            if imported != name and imported != "har_kedro":
                targets.add(imported)
        graph[name] = targets
    return graph


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layering_violations(graph: Mapping[str, Iterable[str]], allowed: Mapping[str, set[str]] = ALLOWED) -> list[str]:
    """``"a.b imports c.d"`` for every import that crosses units the table does not allow."""
    bad = []
    for module, targets in sorted(graph.items()):
        source = unit_of(module)
        for target in sorted(targets):
            unit = unit_of(target)
            if unit != source and unit not in allowed.get(source, set()):
                bad.append(f"{module} imports {target} ({source} may use only {sorted(allowed.get(source, set()))})")
    return bad


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``"name (N lines)"`` for each function or method whose body, signature and decorators included, exceeds ``limit``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > limit:
                found.append(f"{node.name} ({length} lines)")
    return found


# --------------------------------------------------------------------------- the checkers can fail


def test_a_forbidden_import_is_reported() -> None:
    graph = {"har_kedro.models.classifier": {"har_kedro.training.loop"}, "har_kedro.training.loop": {"har_kedro.models.losses"}}
    assert layering_violations(graph) == [
        "har_kedro.models.classifier imports har_kedro.training.loop (models may use only ['config'])"
    ]


def test_an_import_inside_a_function_counts() -> None:
    source = "def f():\n    from har_kedro.training.runner import run_training\n    return run_training\n"
    assert imports_of(source, "har_kedro.inference.predict") == {"har_kedro.training.runner", "har_kedro.training.runner.run_training"}
    relative = "from .loop import fit\n"
    assert "har_kedro.training.loop" in imports_of(relative, "har_kedro.training.runner")


def test_a_cycle_is_reported_even_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_a_long_function_is_reported() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert long_functions(f"@decorator\ndef f():\n{body}") == ["f (62 lines)"]
    assert long_functions("def g():\n    return 1\n") == []


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_unit_of_the_package_is_in_the_layering_table(graph: dict[str, set[str]]) -> None:
    assert sorted({unit_of(m) for m in graph} - set(ALLOWED)) == []


def test_imports_follow_the_layering(graph: dict[str, set[str]]) -> None:
    assert layering_violations(graph) == []


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert import_cycles(graph) == []


def test_settings_import_nothing_of_the_package_but_settings(graph: dict[str, set[str]]) -> None:
    config_imports = {t for m, targets in graph.items() if unit_of(m) == "config" for t in targets}
    assert {t for t in config_imports if unit_of(t) != "config"} == set()


def test_functions_are_short() -> None:
    found = {
        str(path.relative_to(PACKAGE)): long
        for path in sorted(PACKAGE.rglob("*.py"))
        if (long := long_functions(path.read_text(encoding="utf-8")))
    }
    assert found == {}

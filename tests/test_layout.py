"""The package's layout is its architecture: every import runs down the layers below, no
module imports itself back through others, and nothing but the comparison tool's own
modules imports ``compare/``."""

from __future__ import annotations

import ast
from collections import defaultdict

from helpers import REPO

PACKAGE = REPO / "lightning_mnist"
# Bottom to top. A unit (a top-level module or a sub-package) may import units of lower
# layers only; units of one layer do not import each other.
LAYERS = (
    {"parser_errors"},
    {"atomic", "errors", "presets", "quiet"},
    {"data"},
    {"model", "checks", "predict"},
    {"ops"},
    {"network"},
    {"system"},
    {"checkpoints"},
    {"run", "interop"},
    {"options"},
    {"cli"},
    {"compare"},
)
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def module_imports() -> dict[str, set[str]]:
    """Each lightning_mnist module's lightning_mnist imports (dotted names), from its code."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.with_suffix("").relative_to(REPO).parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "lightning_mnist"
            ):
                for alias in node.names:  # `from pkg import module` names a module too
                    full = f"{node.module}.{alias.name}"
                    is_module = (REPO / (full.replace(".", "/") + ".py")).exists()
                    found[name].add(full if is_module else node.module)
            elif isinstance(node, ast.Import):
                found[name] |= {a.name for a in node.names if a.name.startswith("lightning_mnist.")}
    return found


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_unit_has_a_layer():
    units = {unit(m) for m in module_imports()} - {"lightning_mnist"}
    assert units <= RANK.keys(), f"place these in LAYERS: {sorted(units - RANK.keys())}"


def test_imports_only_run_down():
    up = [
        f"{m} -> {t}"
        for m, targets in module_imports().items()
        for t in targets
        if unit(t) != unit(m) and unit(m) in RANK and RANK[unit(t)] >= RANK[unit(m)]
    ]
    assert not up, "imports that do not run down the layers:\n" + "\n".join(sorted(up))


def test_no_import_cycles_between_modules():
    graph = module_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            assert state.get(t) != 1, "import cycle: " + " -> ".join([*path, m, t])
            if t not in state:
                visit(t, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_nothing_outside_the_comparison_tool_imports_it():
    users = {m for m, targets in module_imports().items() for t in targets if unit(t) == "compare"}
    assert {unit(m) for m in users} <= {"compare"}

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


# A reference read in one sitting: short files, short functions, a small package.
MAX_FILE_LINES, MAX_FUNCTION_CODE_LINES, MAX_CLI_LINES = 300, 40, 200


def code_lines(node: ast.AST, source: list[str]) -> int:
    """Lines of ``node`` that hold code: not blank, not a comment, not its docstring."""
    doc: set[int] = set()
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        doc = set(range(body[0].lineno, body[0].end_lineno + 1))
    lines = range(node.lineno, node.end_lineno + 1)
    return sum(1 for i in lines if i not in doc and source[i - 1].strip()[:1] not in ("", "#"))


def test_files_and_functions_are_short():
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        source, name = text.splitlines(), path.relative_to(REPO)
        if len(source) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(source)}")
        for node in ast.walk(ast.parse(text)):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and (n := code_lines(node, source)) > MAX_FUNCTION_CODE_LINES:
                long_functions.append(f"{name}:{node.lineno} {node.name}: {n}")
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_CODE_LINES}: {long_functions}"
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= MAX_CLI_LINES


def test_the_size_rule_counts_code_only():
    text = 'def f():\n    """Doc\n    more."""\n\n    # why\n    x = 1\n    return x\n'
    assert code_lines(ast.parse(text).body[0], text.splitlines()) == 3  # def, x =, return

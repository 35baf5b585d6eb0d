"""Rules every test in the suite keeps, read from the tests' source.

No assertion compares an expression with itself (it cannot fail), and no test asserts only
that a command exited with 0: a test names a behaviour and checks what that behaviour leaves.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import conftest
import torch
from conftest import SESSION_THREADS

TESTS = Path(__file__).resolve().parent


def self_comparisons(tree: ast.AST) -> list[str]:
    """Assertions whose two sides are the same expression, e.g. ``assert x == x``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            sides = [node.test.left, *node.test.comparators]
            dumps = [ast.dump(s) for s in sides]
            if len(set(dumps)) < len(dumps):
                found.append(f"line {node.lineno}: assert {ast.unparse(node.test)}")
    return found


def is_exit_zero(test: ast.expr) -> bool:
    """``<anything> == 0`` where the left side names an exit status."""
    if not (isinstance(test, ast.Compare) and len(test.comparators) == 1):
        return False
    right, left = test.comparators[0], ast.unparse(test.left)
    zero = isinstance(right, ast.Constant) and right.value == 0
    return zero and any(word in left for word in ("returncode", "exit_code", "rc"))


def exit_code_only_tests(tree: ast.AST) -> list[str]:
    """Test functions whose every check is an exit status of 0 (no other assert, no helper
    or ``pytest.raises`` call that could check more)."""
    found = []
    for fn in ast.walk(tree):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test")):
            continue
        asserts = [n.test for n in ast.walk(fn) if isinstance(n, ast.Assert)]
        calls = [ast.unparse(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)]
        helpers = [c for c in calls if "assert" in c or "raises" in c or "check" in c]
        if asserts and all(is_exit_zero(a) for a in asserts) and not helpers:
            found.append(f"line {fn.lineno}: {fn.name}")
    return found


def violations(pattern: str, scan) -> dict[str, list[str]]:
    """What ``scan`` finds in each file of the suite matching ``pattern``."""
    found = {
        str(p.relative_to(TESTS)): scan(ast.parse(p.read_text())) for p in TESTS.rglob(pattern)
    }
    return {name: lines for name, lines in sorted(found.items()) if lines}


def test_no_assertion_compares_a_value_with_itself() -> None:
    assert violations("*.py", self_comparisons) == {}


def test_no_test_checks_only_an_exit_code_of_zero() -> None:
    assert violations("test_*.py", exit_code_only_tests) == {}


def test_the_rules_catch_what_they_name() -> None:
    """The two scanners flag the patterns they forbid and pass the ones they allow."""
    same = ast.parse("def test_a():\n    assert f(x) == f(x)\n    assert f(x) == f(y)\n")
    assert self_comparisons(same) == ["line 2: assert f(x) == f(x)"]
    only_rc = ast.parse("def test_b():\n    r = run()\n    assert r.returncode == 0\n")
    assert exit_code_only_tests(only_rc) == ["line 1: test_b"]
    more = ast.parse("def test_c():\n    r = run()\n    assert r.returncode == 0\n    assert out\n")
    assert exit_code_only_tests(more) == []


def test_a_test_may_change_the_thread_count() -> None:
    """Changes it for the next test to see (conftest's autouse fixture must undo it)."""
    torch.set_num_threads(1 if SESSION_THREADS > 1 else 2)
    assert torch.get_num_threads() != SESSION_THREADS


def test_an_xdist_worker_runs_on_its_share_of_the_cores() -> None:
    """`make test` runs pytest-xdist workers; conftest gives each cores // workers threads
    (torch here, and the commands the tests start). A plain run's, or a user's own
    OMP_NUM_THREADS, it leaves alone."""
    env = {k: os.environ.get(k) for k in conftest.THREAD_VARS}
    share = conftest.THREAD_SHARE
    if share is None:
        assert env == conftest.OUTER_THREAD_ENV
        return
    assert env == {k: outer or share for k, outer in conftest.OUTER_THREAD_ENV.items()}
    assert str(SESSION_THREADS) == share  # set before torch loaded


def test_the_next_test_runs_on_the_session_thread_count() -> None:
    assert torch.get_num_threads() == SESSION_THREADS

"""benchmarks/mutations.py stays runnable: each mutation's text occurs exactly once in its file
and each test it names exists. (The mutations themselves run outside CI: they take minutes.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mutations():
    spec = importlib.util.spec_from_file_location("mutations", REPO / "benchmarks/mutations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutations"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module.MUTATIONS


@pytest.mark.parametrize("mutation", _mutations(), ids=lambda m: m.name)
def test_each_mutation_applies_and_names_existing_tests(mutation):
    assert (REPO / mutation.file).read_text().count(mutation.old) == 1, mutation.file
    assert mutation.tests
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert f"def {name.split('[')[0]}(" in (REPO / path).read_text(), test

"""Every committed JSON record (reports/, benchmarks/results/) is strict JSON: no bare NaN or
Infinity, which strict parsers (and other languages' JSON libraries) reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import REPO

RECORDS = sorted(
    p.relative_to(REPO) for d in ("reports", "benchmarks") for p in (REPO / d).rglob("*.json")
)


def refuse(constant: str) -> None:
    raise ValueError(f"non-strict JSON constant {constant}")


def test_there_are_records_to_check() -> None:
    names = {p.name for p in RECORDS}
    assert {"report.json", "settings.json", "bench.json", "lockstep.json"} <= names


@pytest.mark.parametrize("path", RECORDS, ids=str)
def test_a_committed_record_is_strict_json(path: Path) -> None:
    json.loads((REPO / path).read_text(), parse_constant=refuse)


def test_the_check_refuses_a_bare_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        json.loads('{"a": NaN}', parse_constant=refuse)

"""Markdown tables: the one writer of every table in report.md, bench.md and the README's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def md_table(header: Sequence[object], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table ending with a newline; ``align`` has one letter per column, ``l`` or
    ``r`` (empty: the first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = [_line(header), rule, *(_line(r) for r in rows)]
    return "\n".join(lines) + "\n"


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"

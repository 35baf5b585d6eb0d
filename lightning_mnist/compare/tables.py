"""The one Markdown-table helper behind every table of report.md and bench.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def md_table(header: Sequence[object], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table, one ``| a | b |`` line per row, ending with a newline.

    Args:
        header: The column titles.
        rows: The cells of each row, turned into text with ``str``.
        align: One letter per column, ``l`` (left) or ``r`` (right); empty: the first
            column left, the others right.
    """
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = [_line(header), rule, *(_line(r) for r in rows)]
    return "\n".join(lines) + "\n"


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"

"""Markdown tables: the one writer of every table in report.md, bench.md and the README's."""

from collections.abc import Iterable, Sequence


def md_table(header: Sequence[object], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table ending with a newline; ``align`` has one letter per column, ``l`` or
    ``r`` (empty: the first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(map(str, cells)) + " |" for cells in (header, *rows)]
    lines.insert(1, "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|")
    return "\n".join(lines) + "\n"

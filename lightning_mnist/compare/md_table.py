"""Markdown tables: the one writer of every table in report.md, bench.md and the README's."""

from collections.abc import Iterable, Sequence


def md_table(
    header: Sequence[object], rows: Iterable[Sequence[object]], all_right: bool = False
) -> str:
    """A Markdown table ending with a newline: the first column left-aligned (right with
    ``all_right``), the others right; ``ValueError`` for a row of another width."""
    lines = [header, *rows]
    if any(len(cells) != len(header) for cells in lines):
        raise ValueError(f"every row of a table has {len(header)} cells: {lines}")
    text = ["| " + " | ".join(map(str, cells)) + " |" for cells in lines]
    rule = ("---:" if all_right or i else "---" for i in range(len(header)))
    text.insert(1, "|" + "|".join(rule) + "|")
    return "\n".join(text) + "\n"

"""Text tables of already formatted cells: aligned plain text for the terminal, Markdown for
reports, CSV for files. The one place that lays out a table; what goes into the cells (which
columns, how many digits, which value is marked best) is the caller's."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

__all__ = ["aligned", "csv_text", "markdown"]


def aligned(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    header_rule: bool = True,
    rule_before_last: bool = False,
) -> str:
    """Columns padded to their widest cell, two spaces apart: the first column left-aligned
    (names), the others right-aligned (numbers).

    Args:
        header: Column titles.
        rows: Cells, one list per row, as many as ``header``.
        header_rule: A line of dashes under each column's title.
        rule_before_last: A full-width line of dashes before the last row (a total).
    """
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    lines = [line(table[0])]
    if header_rule:
        lines.append(line(["-" * w for w in widths]))
    for k, r in enumerate(table[1:]):
        if rule_before_last and k == len(table) - 2:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        lines.append(line(r))
    return "\n".join(lines)


def markdown(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, left_marker: str = ":---"
) -> str:
    """A Markdown table (no trailing newline): the first column left-aligned, the others
    right-aligned; ``|`` in a cell is escaped.

    Args:
        header: Column titles.
        rows: Cells, one list per row.
        left_marker: The first column's alignment marker (``":---"``, or ``"---"``, which
            renders left-aligned too).
    """

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |"]
    lines.append("|" + "|".join([left_marker] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table as CSV text (``\\n`` line ends, a final newline)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()

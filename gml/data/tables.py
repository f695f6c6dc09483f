"""Reading a CSV table that a user wrote (a manifest, a pairs file, a listening-test export):
every cell as text, column names stripped, and one clear line naming the file when it is
missing, unreadable, lacks a column or has no rows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gml.errors import GMLError

__all__ = ["read_table"]


def read_table(
    path: str | os.PathLike,
    required: Sequence[str] = (),
    error: type[GMLError] = GMLError,
    *,
    what: str = "table",
    rows: str | None = "rows",
    hint: str = "",
    sep: str = ",",
) -> pd.DataFrame:
    """The table at ``path``, every value a string (empty cells ``""``, no NaN).

    Args:
        path: A CSV file (a byte-order mark, as Excel writes, is ignored).
        required: Columns that must be there.
        error: The error raised (:class:`~gml.errors.GMLError` or a subclass).
        what: What the file is, for "not found" (``"manifest file"``, ``"pairs file"``).
        rows: What its rows are, for a table with none (``"ratings"``); None: no rows is fine.
        hint: What was expected, appended to "not found" and to "missing column(s)" (default
            for the latter: the required columns).
        sep: The column separator.

    Raises:
        error: ``"<path>: <what> not found"``, ``"<path>: not a readable CSV file (...)"``,
            ``"<path>: missing column(s) ..."`` or ``"<path>: no <rows> (the file has a header
            but no rows)"``.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found" + (f"; {hint}" if hint else ""))
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise error(f"{path}: not a readable CSV file ({' '.join(str(err).split())})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        expected = hint or f"required: {', '.join(required)}"
        raise error(f"{path}: missing column(s) {', '.join(missing)}; {expected}")
    if rows is not None and len(df) == 0:
        raise error(f"{path}: no {rows} (the file has a header but no rows)")
    return df

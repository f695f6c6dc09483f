"""Any table of individual ratings (CSV), mapped onto manifest columns.

``--map`` entries ``column=value`` (comma-separated, repeatable) fill a manifest column (the
required ones, ``split`` or any extra column) from the source table. A value is:

* a **template** if it contains ``{``: ``audio/{Trial}/{Condition}.wav``; each ``{field}`` is
  a source column or a manifest column mapped from a column or constant; ``{{`` / ``}}`` are
  literal braces;
* else a **source column** if the table has a column of that name;
* else a **constant**: ``test=sisec08`` (``score`` cannot be a constant, so a mistyped score
  column is an error rather than a constant).

An unmapped manifest column is taken from a source column of the same name when there is one.
Source columns that are not mapped are carried through as extra columns (``--drop-unmapped``
drops them). ``--where COLUMN=VALUE`` (or ``COLUMN!=VALUE``; repeatable, all must hold) keeps
only the rows of the source table whose column has (or has not) that exact text, before any
mapping: e.g. one task of a table that holds two, without replicate trials. Audio paths are relative to ``--audio-root`` (default: the table's folder).
Without audio (``--no-audio``) and without a mapping for ``reference`` / ``coded``,
placeholder paths ``missing-audio/<test>/<item>/reference.wav`` and ``.../<condition>.wav``
under the manifest's folder keep the manifest valid; they are counted as missing audio.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gml.data.importers.base import (
    ImporterError,
    ImportResult,
    RatingRows,
    parse_score,
    resolve_audio,
    safe_name,
)
from gml.data.manifest import REQUIRED_COLUMNS
from gml.data.tables import read_table

__all__ = ["Source", "import_table", "parse_map", "parse_where"]


@dataclass(frozen=True)
class Source:
    """Where a manifest column comes from.

    Attributes:
        kind: ``"column"``, ``"constant"`` or ``"template"``.
        value: The column name, the constant or the template text.
        fields: A template's field names (empty otherwise).
    """

    kind: str
    value: str
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        """``column 'Trial'``, ``constant 'sisec08'`` or ``template 'a/{x}.wav'``."""
        return f"{self.kind} {self.value!r}"


def parse_map(specs: str | Iterable[str]) -> dict[str, str]:
    """``"score=Ratingscore,test=sisec08"`` (or several such strings) → ``{target: value}``.

    Raises:
        ImporterError: An entry without ``=``, an empty name, or a column mapped twice.
    """
    if isinstance(specs, str):
        specs = [specs]
    out: dict[str, str] = {}
    for spec in specs:
        for entry in _split_entries(spec):
            if not entry.strip():
                continue
            if "=" not in entry:
                raise ImporterError(
                    f"--map {entry!r}: expected COLUMN=VALUE (a source column, a constant or a "
                    "template such as audio/{Trial}/orig.wav)"
                )
            key, value = (s.strip() for s in entry.split("=", 1))
            if not key:
                raise ImporterError(f"--map {entry!r}: empty manifest column name")
            if key in out:
                raise ImporterError(f"--map: column {key!r} mapped twice")
            out[key] = value
    return out


def parse_where(specs: str | Iterable[str]) -> list[tuple[str, bool, str]]:
    """``["experiment=quality", "is_replicate!=True"]`` → ``[(column, equal, value)]``.

    Raises:
        ImporterError: An entry without ``=`` or with an empty column name.
    """
    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in specs:
        col, sep, value = spec.partition("=")
        equal = not col.endswith("!")
        col = col.rstrip("!").strip()
        if not sep or not col:
            raise ImporterError(
                f"--where {spec!r}: expected COLUMN=VALUE or COLUMN!=VALUE (e.g. experiment=quality)"
            )
        out.append((col, equal, value.strip()))
    return out


def select_rows(df: pd.DataFrame, where: list[tuple[str, bool, str]], path: Path) -> pd.DataFrame:
    """The rows of ``df`` that satisfy every ``where`` condition (exact text comparison).

    Raises:
        ImporterError: A column that the table lacks, or no row left.
    """
    keep = pd.Series(True, index=df.index)
    for col, equal, value in where:
        if col not in df.columns:
            raise ImporterError(
                f"--where {col}{'=' if equal else '!='}{value}: {path} has no column {col!r} "
                f"(columns: {', '.join(df.columns)})"
            )
        hit = df[col].str.strip().eq(value)
        keep &= hit if equal else ~hit
    if not keep.any():
        said = " and ".join(f"{c}{'=' if e else '!='}{v}" for c, e, v in where)
        raise ImporterError(f"{path}: no row has {said} (of {len(df)} rows)")
    return df[keep]


def _split_entries(spec: str) -> list[str]:
    """Split on commas outside ``{...}`` (a template field may not hold one, but be safe)."""
    parts, depth, cur = [], 0, []
    for ch in spec:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def import_table(
    path: str | os.PathLike,
    mapping: Mapping[str, str] | str | Iterable[str] = (),
    *,
    out_dir: str | os.PathLike = ".",
    audio_root: str | os.PathLike | None = None,
    check_audio: bool = True,
    sep: str = ",",
    drop_unmapped: bool = False,
    where: str | Iterable[str] = (),
) -> ImportResult:
    """Import a CSV table of individual ratings.

    Args:
        path: The table (header row first).
        mapping: ``{manifest column: value}`` or ``--map`` strings (see the module docstring).
        out_dir: Folder the manifest will be written to.
        audio_root: Folder audio paths are relative to (default: the table's folder).
        check_audio: Require every audio file to exist; False allows ratings without audio.
        sep: Field separator (``"\\t"`` for TSV).
        drop_unmapped: Leave out the source columns that no mapping uses.
        where: ``--where`` conditions (``COLUMN=VALUE`` / ``COLUMN!=VALUE``): only the rows
            meeting all of them are imported. Rows keep their numbers in the file for messages.

    Returns:
        The validated ratings; ``notes`` says where each manifest column came from.

    Raises:
        ImporterError: Naming the file, row and column, or the ``--map`` entry.
    """
    path = Path(path)
    if not isinstance(mapping, Mapping):
        mapping = parse_map(mapping)
    df = read_table(path, (), ImporterError, what="ratings table", rows="ratings", sep=sep)
    conditions = parse_where(where)
    n_read = len(df)
    if conditions:
        df = select_rows(df, conditions, path)
    columns = list(df.columns)
    sources = _sources(path, columns, mapping)
    # ratings without audio (statistics only): placeholder paths keep the manifest valid
    placeholders = set() if check_audio else {"reference", "coded"} - set(sources)
    missing = [c for c in REQUIRED_COLUMNS if c not in sources and c not in placeholders]
    if missing:
        hint = (
            " (or pass --no-audio for ratings without audio)"
            if {"reference", "coded"} & set(missing)
            else ""
        )
        raise ImporterError(
            f"{path}: no mapping for manifest column(s) {', '.join(missing)}; give --map "
            f"{missing[0]}=COLUMN (columns: {', '.join(columns)}){hint}"
        )
    for target, src in sources.items():
        if target == "score" and src.kind != "column":
            raise ImporterError(
                f"--map score={src.value}: {src.value!r} is not a column of {path}; the score "
                f"must come from a column (columns: {', '.join(columns)})"
            )
        for fld in src.fields:
            if fld not in columns and (fld not in sources or sources[fld].kind == "template"):
                raise ImporterError(
                    f"--map {target}={src.value}: field {{{fld}}} is neither a column of {path} "
                    f"({', '.join(columns)}) nor a manifest column mapped from a column or constant"
                )
    used = {s.value for s in sources.values() if s.kind == "column"}
    used |= {f for s in sources.values() for f in s.fields}
    carried = [] if drop_unmapped else [c for c in columns if c not in used and c not in sources]
    placeholder_dir = Path(out_dir).resolve() / "missing-audio"
    bases = [audio_root if audio_root is not None else path.parent]
    rows = RatingRows()
    resolved: dict[str, str] = {}
    for i, rec in zip(df.index, df.to_dict("records")):
        where = f"{path}: row {i + 2}"
        plain = {t: _value(s, rec, {}) for t, s in sources.items() if s.kind != "template"}
        row = {t: _value(s, rec, plain) for t, s in sources.items()}
        for col in ("test", "item", "condition", "listener"):
            row[col] = row[col].strip()
            if not row[col]:
                raise ImporterError(f"{where}, {_label(col, sources[col])}: empty value")
        for col in ("reference", "coded"):
            if col in placeholders:
                stem = "reference" if col == "reference" else safe_name(row["condition"])
                folder = placeholder_dir / safe_name(row["test"]) / safe_name(row["item"])
                row[col] = str(folder / f"{stem}.wav")
                continue
            src, value = sources[col], row[col]
            if not value.strip():
                raise ImporterError(
                    f"{where}, {_label(col, src)}: empty; expected an audio file path"
                )
            if value not in resolved:
                resolved[value] = resolve_audio(value, bases)
            row[col] = resolved[value]
            rows.name_audio(row[col], f"{where}, {_label(col, src)}")
        row["score"] = parse_score(row["score"], f"{where}, column {sources['score'].value!r}")
        for c in carried:
            row[c] = rec[c]
        rows.add(where, **row)
    notes = ["mapping: " + ", ".join(f"{t} <- {s.describe()}" for t, s in sources.items())]
    if conditions:
        said = " and ".join(f"{c}{'=' if e else '!='}{v}" for c, e, v in conditions)
        notes.append(f"rows with {said}: {len(df)} of {n_read}")
    if placeholders:
        notes.append(
            f"no audio: placeholder {' and '.join(sorted(placeholders))} paths under "
            f"{placeholder_dir}"
        )
    return rows.finish(str(path), out_dir, check_audio, notes=notes)


def _label(col: str, src: Source) -> str:
    return f"column {src.value!r}" if src.kind == "column" else f"{col} ({src.describe()})"


def _sources(path: Path, columns: list[str], mapping: Mapping[str, str]) -> dict[str, Source]:
    out: dict[str, Source] = {}
    for target, value in mapping.items():
        if "{" in value or "}" in value:
            try:
                fields = tuple(f for _, f, _, _ in string.Formatter().parse(value) if f is not None)
            except ValueError as err:
                raise ImporterError(
                    f"--map {target}={value}: not a valid template ({err})"
                ) from None
            for f in fields:
                if not f:
                    raise ImporterError(f"--map {target}={value}: empty field {{}}; name a column")
            for _, f, spec, conv in string.Formatter().parse(value):
                if f is not None and (spec or conv):
                    raise ImporterError(
                        f"--map {target}={value}: field {{{f}}} has a format spec or conversion; "
                        "expected plain {column} fields"
                    )
            out[target] = Source("template", value, fields)
        elif value in columns:
            out[target] = Source("column", value)
        else:
            out[target] = Source("constant", value)
    for col in (*REQUIRED_COLUMNS, "split", "role"):
        if col not in out and col in columns:
            out[col] = Source("column", col)
    return out


def _value(src: Source, rec: dict[str, str], plain: dict[str, str]) -> str:
    if src.kind == "column":
        return rec[src.value]
    if src.kind == "constant":
        return src.value
    values = {f: rec[f] if f in rec else plain[f] for f in src.fields}
    return src.value.format(**values)

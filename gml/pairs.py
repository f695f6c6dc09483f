"""Reference/coded pairs from a pairs CSV or from two folders matched by file name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gml.data.tables import read_table
from gml.errors import GMLError

__all__ = ["AUDIO_SUFFIXES", "PairMatch", "audio_files", "match_dirs", "read_pairs"]

#: Audio file suffixes that folder matching considers (what libsndfile commonly reads).
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".caf", ".w64", ".mp3"}


@dataclass
class PairMatch:
    """Pairs found by :func:`match_dirs`.

    Attributes:
        references, coded: Paths of the paired files, in reference-name order.
        names: The reference file names.
        lonely_references: Reference names without a coded partner.
        lonely_coded: Coded names without a reference.
    """

    references: list[str] = field(default_factory=list)
    coded: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    lonely_references: list[str] = field(default_factory=list)
    lonely_coded: list[str] = field(default_factory=list)


def audio_files(folder: Path) -> list[Path]:
    """Audio files (by suffix, see :data:`AUDIO_SUFFIXES`) directly in a folder, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def match_dirs(reference_dir: str | os.PathLike, coded_dir: str | os.PathLike) -> PairMatch:
    """Pair files with the same name (else the same name without suffix, when unique).

    Raises:
        GMLError: a folder is missing, or no file pairs up.
    """
    ref_dir, cod_dir = Path(reference_dir), Path(coded_dir)
    for d in (ref_dir, cod_dir):
        if not d.is_dir():
            raise GMLError(f"{d}: folder not found")
    refs, cods = audio_files(ref_dir), audio_files(cod_dir)
    by_name = {p.name: p for p in cods}
    by_stem: dict[str, list[Path]] = {}
    for p in cods:
        by_stem.setdefault(p.stem, []).append(p)
    match = PairMatch()
    used: set[Path] = set()
    for r in refs:
        c = by_name.get(r.name)
        if c is None and len(by_stem.get(r.stem, [])) == 1:
            c = by_stem[r.stem][0]
        if c is None or c in used:
            match.lonely_references.append(r.name)
            continue
        used.add(c)
        match.references.append(str(r))
        match.coded.append(str(c))
        match.names.append(r.name)
    match.lonely_coded = [c.name for c in cods if c not in used]
    if not match.references:
        raise GMLError(f"{ref_dir} and {cod_dir}: no audio files with the same name in both")
    return match


def read_pairs(path: str | os.PathLike) -> tuple[list[str], list[str], pd.DataFrame]:
    """A pairs CSV: ``reference``, ``coded`` (resolved against the CSV's folder) and the
    table itself (its other columns travel to the output).

    Raises:
        GMLError: missing file or column, empty cell, or audio file not found (row named).
    """
    path = Path(path)
    df = read_table(path, ("reference", "coded"), GMLError, what="pairs file", rows="pairs")
    resolved: dict[str, list[str]] = {}
    for col in ("reference", "coded"):
        paths = []
        for r, value in enumerate(df[col].str.strip()):
            if not value:
                raise GMLError(f"{path}: row {r + 2}, column '{col}': empty value")
            p = Path(value).expanduser()
            p = p if p.is_absolute() else (path.parent / p).resolve()
            if not p.is_file():
                raise GMLError(f"{path}: row {r + 2}, column '{col}': audio file not found: {p}")
            paths.append(str(p))
        resolved[col] = paths
    return resolved["reference"], resolved["coded"], df

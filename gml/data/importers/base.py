"""What every importer shares: the result type, rating rows that remember where each came
from (so errors name the source file, row and field), score parsing, audio-path resolution,
the final validation through :class:`~gml.data.manifest.Manifest` and the manifest writer."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gml.atomic import atomic_write_text
from gml.data.manifest import REQUIRED_COLUMNS, ROLES, Manifest
from gml.errors import GMLError
from gml.stats import STIMULUS_KEY

if TYPE_CHECKING:
    from gml.data.importers.screening import ScreeningReport

__all__ = [
    "ROLES",
    "ImportResult",
    "ImporterError",
    "RatingRows",
    "parse_score",
    "pick_base",
    "resolve_audio",
    "safe_name",
    "write_manifest",
]


class ImporterError(GMLError):
    """A listening-test result file that cannot be imported; the message names the file, the
    row / element and the field, and says what was expected."""


@dataclass
class ImportResult:
    """What an importer returns.

    Attributes:
        manifest: The validated ratings (paths absolute).
        missing_audio: Stimuli whose reference or coded file does not exist (only possible when
            audio checks were off).
        anchors: Anchor files rendered by the importer (webMUSHRA).
        notes: Remarks for the user (derived listener ids, skipped elements, the column mapping).
        screening: The post-screening report when screening was applied, else None.
    """

    manifest: Manifest
    missing_audio: int = 0
    anchors: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screening: ScreeningReport | None = None

    def counts(self) -> dict[str, int]:
        """Tests, items (test/item pairs), condition names, listener ids, ratings, stimuli,
        stimuli with missing audio and listeners screened out."""
        r = self.manifest.ratings
        return {
            "tests": r["test"].nunique(),
            "items": len(r[["test", "item"]].drop_duplicates()),
            "conditions": r["condition"].nunique(),
            "listeners": r["listener"].nunique(),
            "ratings": len(r),
            "stimuli": len(r[list(STIMULUS_KEY)].drop_duplicates()),
            "stimuli with missing audio": self.missing_audio,
            "listeners screened out": 0 if self.screening is None else self.screening.n_excluded,
        }

    def summary(self) -> str:
        """A few lines for the terminal: the counts, then notes and the screening report."""
        counts = self.counts()
        tests = sorted(self.manifest.ratings["test"].unique())
        lines = [f"  {k:<27} {v:>6}" for k, v in counts.items()]
        lines[0] += f"  ({', '.join(tests[:8])}{', ...' if len(tests) > 8 else ''})"
        if self.screening is None:
            lines[-1] += "  (screening off)"
        out = ["imported:", *lines]
        out += [f"note: {n}" for n in self.notes]
        if self.screening is not None:
            out.append(self.screening.format())
        return "\n".join(out)


class RatingRows:
    """Rating rows under construction, each with its origin ("file: row 7") for messages."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.origins: list[str] = []
        #: Where an audio path was named (for "audio file not found" messages).
        self.audio_origins: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, origin: str, **row: Any) -> None:
        """Append one rating (manifest columns and extra columns) read at ``origin``."""
        self.rows.append(row)
        self.origins.append(origin)

    def name_audio(self, path: str, origin: str) -> None:
        """Remember the first place that named ``path``."""
        self.audio_origins.setdefault(path, origin)

    def check(self, check_audio: bool, pending: Iterable[str] = ()) -> None:
        """Reject a listener who rated a stimulus twice, a stimulus with two reference or coded
        files and (with ``check_audio``) missing audio, naming the source rows.

        Args:
            check_audio: Fail on audio files that do not exist.
            pending: Paths that the importer is about to write (rendered anchors).

        Raises:
            ImporterError: The first problem found.
        """
        first: dict[tuple, int] = {}
        files: dict[tuple, tuple[str, str, int]] = {}
        for k, row in enumerate(self.rows):
            stim = tuple(str(row[c]) for c in STIMULUS_KEY)
            key = (*stim, str(row["listener"]))
            if key in first:
                raise ImporterError(
                    f"{self.origins[k]}: listener {row['listener']!r} rated stimulus "
                    f"{'/'.join(stim)} again (first at {self.origins[first[key]]}); "
                    "expected one rating per listener and stimulus"
                )
            first[key] = k
            pair = (str(row["reference"]), str(row["coded"]), k)
            seen = files.setdefault(stim, pair)
            if seen[:2] != pair[:2]:
                j = 0 if seen[0] != pair[0] else 1
                col = ("reference", "coded")[j]
                raise ImporterError(
                    f"{self.origins[k]}: stimulus {'/'.join(stim)} has {col} file {pair[j]} "
                    f"but {seen[j]} at {self.origins[seen[2]]}; expected one file per stimulus"
                )
        if not check_audio:
            return
        skip = set(pending)
        for col in ("reference", "coded"):
            for k, row in enumerate(self.rows):
                path = str(row[col])
                if path in skip:
                    continue
                if not os.path.isfile(path):
                    where = self.audio_origins.get(path, f"{self.origins[k]}, field '{col}'")
                    raise ImporterError(
                        f"{where}: audio file not found: {path} (pass --audio-root to say where "
                        "the audio lies, or --no-audio to import the ratings alone)"
                    )
                skip.add(path)

    def finish(
        self,
        source: str,
        out_dir: str | os.PathLike,
        check_audio: bool,
        *,
        checked: bool = False,
        anchors: list[Path] | None = None,
        notes: list[str] | None = None,
    ) -> ImportResult:
        """Validate (see :meth:`check`) and build the :class:`ImportResult`.

        Args:
            source: Name of the input(s) for Manifest messages.
            out_dir: The folder the manifest will be written to (relative paths resolve there).
            check_audio: Require every audio file to exist.
            checked: :meth:`check` already ran (skip it).
            anchors: Anchor files written by the importer.
            notes: Remarks for the user.
        """
        if not self.rows:
            raise ImporterError(f"{source}: no ratings found")
        if not checked:
            self.check(check_audio)
        df = pd.DataFrame(self.rows)
        first = [*REQUIRED_COLUMNS, *(["split"] if "split" in df else [])]
        df = df[first + [c for c in df.columns if c not in first]]
        for col in df.columns:
            if col != "score":
                df[col] = df[col].map(lambda v: "" if v is None or v is pd.NA or v != v else str(v))
        if "role" in df and not df["role"].astype(bool).any():
            df = df.drop(columns=["role"])
        manifest = Manifest.from_frame(df, base_dir=out_dir, source=source, check_audio=check_audio)
        return ImportResult(
            manifest,
            missing_audio=count_missing_audio(manifest),
            anchors=list(anchors or []),
            notes=list(notes or []),
        )


def count_missing_audio(manifest: Manifest) -> int:
    """Stimuli whose reference or coded file does not exist."""
    st = manifest.ratings.drop_duplicates(list(STIMULUS_KEY))
    exists = {p: os.path.isfile(p) for p in manifest.audio_files()}
    bad = ~(st["reference"].map(exists) & st["coded"].map(exists))
    return int(bad.sum())


def parse_score(value: Any, where: str) -> float:
    """A listener score from a results file.

    Args:
        value: The raw value (text or number).
        where: Its place, e.g. ``"results.csv: row 4, column 'rating_score'"``.

    Raises:
        ImporterError: Not a finite number from 0 to 100.
    """
    if isinstance(value, bool) or value is None:
        raise ImporterError(f"{where}: {value!r} is not a number; expected a score from 0 to 100")
    try:
        score = float(str(value).strip())
    except ValueError:
        raise ImporterError(
            f"{where}: {value!r} is not a number; expected a score from 0 to 100"
        ) from None
    if not math.isfinite(score) or not 0.0 <= score <= 100.0:
        raise ImporterError(f"{where}: {value!r} is outside 0-100; expected a score from 0 to 100")
    return score


def resolve_audio(
    path: str, bases: Iterable[str | os.PathLike], fallback: str | os.PathLike | None = None
) -> str:
    """The absolute path of an audio file named in a results or config file.

    Absolute paths are kept. A relative path is tried against each base folder in turn and the
    first existing file wins; when none exists, the path under ``fallback`` (default: the first
    base) is returned, and reported as missing later.
    """
    p = Path(path.strip()).expanduser()
    if p.is_absolute():
        return str(p.resolve())
    bases = list(bases)
    for b in bases:
        c = (Path(b) / p).resolve()
        if c.is_file():
            return str(c)
    return str((Path(fallback if fallback is not None else bases[0]) / p).resolve())


def pick_base(paths: Iterable[str], bases: Sequence[str | os.PathLike]) -> Path:
    """The base folder under which most of ``paths`` exist (the first on a tie): where a
    missing file of the same results should be reported as missing."""
    paths = [Path(p.strip()).expanduser() for p in paths]
    hits = [sum((Path(b) / p).is_file() for p in paths) for b in bases]
    return Path(bases[hits.index(max(hits))])


def safe_name(text: str) -> str:
    """``text`` made safe as one file-name component (for rendered files)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def write_manifest(manifest: Manifest, out: str | os.PathLike) -> Path:
    """Write a manifest CSV atomically.

    Audio paths below the manifest's folder are written relative to it (the folder can be moved
    as a whole); others stay absolute.

    Returns:
        The path written.
    """
    out = Path(out)
    folder = out.parent.resolve()
    df = manifest.ratings.copy()
    for col in ("reference", "coded"):
        df[col] = df[col].map(lambda p: _portable(p, folder))
    atomic_write_text(out, df.to_csv(index=False))
    return out


def _portable(path: str, folder: Path) -> str:
    p = Path(path)
    try:
        return p.relative_to(folder).as_posix()
    except ValueError:
        return str(p)

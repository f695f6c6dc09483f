"""The Manifest: one row per individual rating, the one internal listening-test format.

Required columns: ``test, item, condition, listener, score, reference, coded``. Optional:
``split`` (train / val / test), ``role`` (what a condition is in the MUSHRA sense, see
:data:`ROLES`) and any extra columns, which are carried through to outputs.
A stimulus is (test, item, condition). Audio paths are relative to the manifest's folder or
absolute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gml.data.tables import read_table
from gml.errors import GMLError
from gml.stats import STIMULUS_KEY, stimulus_table

REQUIRED_COLUMNS = (*STIMULUS_KEY, "listener", "score", "reference", "coded")
SPLITS = ("train", "val", "test")

#: Values of the optional ``role`` column: what a condition is in the MUSHRA sense. Empty for a
#: system under test; ``anchor`` for any other anchor (e.g. an unprocessed mixture).
ROLES = ("hidden_reference", "low_anchor", "mid_anchor", "anchor")

#: Evaluation subsets: every stimulus, and the systems under test alone (no hidden reference,
#: no anchor). The hidden reference is rated near 100 and trivially recognised, so correlations
#: over ``all`` are inflated by it.
SUBSETS = ("all", "systems")


def subset_masks(roles: pd.Series | None) -> dict[str, np.ndarray]:
    """Which stimuli (or ratings) belong to each evaluation subset.

    ``systems`` is returned only when at least one role is set (a manifest without roles has
    no known hidden reference or anchor, so it would equal ``all``).

    Args:
        roles: The ``role`` value of each row ("" for a system under test), or None.

    Returns:
        ``{"all": mask[, "systems": mask]}``.

    Shape:
        roles: ``[n]`` → each mask ``[n]`` bool.
    """
    if roles is None:
        return {}
    r = roles.fillna("").astype(str).to_numpy()
    out = {"all": np.ones(len(r), dtype=bool)}
    if (r != "").any():
        out["systems"] = r == ""
    return out


class ManifestError(GMLError):
    """A manifest that cannot be used; the message names the file, row and column."""


@dataclass
class Manifest:
    """A validated table of ratings.

    Attributes:
        ratings: One row per rating with the required columns (``score`` as float,
            ``reference``/``coded`` as absolute paths) plus any extra ones.
        path: The file it was read from (None for an in-memory table).
    """

    ratings: pd.DataFrame
    path: Path | None = None

    @classmethod
    def read(cls, path: str | os.PathLike, check_audio: bool = True) -> Manifest:
        """Read and validate a manifest CSV.

        Args:
            path: CSV file.
            check_audio: Fail if a referenced audio file does not exist. Importers that only
                need statistics pass False (ratings without audio are still valid then).

        Raises:
            ManifestError: naming the file, the (1-based, header = row 1) row and column.
        """
        path = Path(path)
        # columns and rows are checked by from_frame, which also validates DataFrames
        df = read_table(path, (), ManifestError, what="manifest file", rows=None)
        return cls.from_frame(df, base_dir=path.parent, source=str(path), check_audio=check_audio)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        base_dir: str | os.PathLike = ".",
        source: str = "<manifest>",
        check_audio: bool = True,
    ) -> Manifest:
        """Validate a DataFrame of ratings (see :meth:`read`); paths resolve against ``base_dir``."""
        df = df.copy()
        df.columns = [str(c).strip() for c in df.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ManifestError(
                f"{source}: missing column(s) {', '.join(missing)}; "
                f"required: {', '.join(REQUIRED_COLUMNS)}"
            )
        if len(df) == 0:
            raise ManifestError(f"{source}: no ratings (the file has a header but no rows)")
        for col in (*STIMULUS_KEY, "listener", "reference", "coded"):
            values = df[col].astype(str).str.strip()
            empty = np.flatnonzero(values.eq("").to_numpy())
            if len(empty):
                raise ManifestError(f"{source}: row {empty[0] + 2}, column '{col}': empty value")
            df[col] = values
        score = pd.to_numeric(df["score"], errors="coerce")
        bad = np.flatnonzero(score.isna().to_numpy() | ~np.isfinite(score.to_numpy(dtype=float)))
        if len(bad):
            r = bad[0]
            raise ManifestError(
                f"{source}: row {r + 2}, column 'score': {df['score'].iloc[r]!r} is not a number"
            )
        out = np.flatnonzero(((score < 0) | (score > 100)).to_numpy())
        if len(out):
            r = out[0]
            raise ManifestError(
                f"{source}: row {r + 2}, column 'score': {score.iloc[r]:g} is outside 0-100"
            )
        df["score"] = score.astype(float)
        if "split" in df.columns:
            df["split"] = df["split"].astype(str).str.strip().str.lower()
            bad = np.flatnonzero(~df["split"].isin(SPLITS).to_numpy())
            if len(bad):
                r = bad[0]
                raise ManifestError(
                    f"{source}: row {r + 2}, column 'split': {df['split'].iloc[r]!r}; "
                    f"expected one of {', '.join(SPLITS)}"
                )
            mixed = df.groupby(list(STIMULUS_KEY))["split"].nunique()
            if (mixed > 1).any():
                key = mixed[mixed > 1].index[0]
                raise ManifestError(
                    f"{source}: column 'split': stimulus {'/'.join(key)} has ratings in more "
                    "than one split"
                )
        if "role" in df.columns:
            df["role"] = df["role"].astype(str).str.strip()
            bad = np.flatnonzero(~df["role"].isin(("", *ROLES)).to_numpy())
            if len(bad):
                r = bad[0]
                raise ManifestError(
                    f"{source}: row {r + 2}, column 'role': {df['role'].iloc[r]!r}; expected "
                    f"empty (a system under test) or one of {', '.join(ROLES)}"
                )
            mixed = df.groupby(list(STIMULUS_KEY))["role"].nunique()
            if (mixed > 1).any():
                key = mixed[mixed > 1].index[0]
                raise ManifestError(
                    f"{source}: column 'role': stimulus {'/'.join(key)} has more than one role"
                )
        dup = df.duplicated(subset=[*STIMULUS_KEY, "listener"]).to_numpy()
        if dup.any():
            r = int(np.flatnonzero(dup)[0])
            raise ManifestError(
                f"{source}: row {r + 2}: listener {df['listener'].iloc[r]!r} rated stimulus "
                f"{'/'.join(df[list(STIMULUS_KEY)].iloc[r])} more than once"
            )
        base = Path(base_dir)
        for col in ("reference", "coded"):
            uniq = {p: _resolve(base, p) for p in df[col].unique()}
            df[col] = df[col].map(uniq)
            if check_audio:
                for absolute in uniq.values():
                    if not os.path.isfile(absolute):
                        r = int(np.flatnonzero(df[col].eq(absolute).to_numpy())[0])
                        raise ManifestError(
                            f"{source}: row {r + 2}, column '{col}': audio file not found: {absolute}"
                        )
        # a stimulus has one coded file, and a trial (test, item) one reference
        for col, key in (("reference", ["test", "item"]), ("coded", list(STIMULUS_KEY))):
            first = df.groupby(key, sort=False)[col].transform("first")
            bad = np.flatnonzero(df[col].ne(first).to_numpy())
            if len(bad):
                r = int(bad[0])
                same = df[key].iloc[r]
                mask = (df[key] == same).all(axis=1).to_numpy()
                r0 = int(np.flatnonzero(mask)[0])
                what = "item" if col == "reference" else "stimulus"
                raise ManifestError(
                    f"{source}: rows {r0 + 2} and {r + 2}, column '{col}': {what} "
                    f"{'/'.join(map(str, same))} names two {col} files ({df[col].iloc[r0]} and "
                    f"{df[col].iloc[r]}); expected one per {what}"
                )
        return cls(df.reset_index(drop=True), Path(source) if source != "<manifest>" else None)

    @property
    def has_roles(self) -> bool:
        """Whether a ``role`` column marks hidden references and anchors."""
        return "role" in self.ratings.columns

    @property
    def has_split(self) -> bool:
        """Whether a ``split`` column decides the partition (then folds are not used)."""
        return "split" in self.ratings.columns

    def stimuli(self) -> pd.DataFrame:
        """One row per stimulus: key, audio paths, ``n_listeners``, subjective ``mean``, ``std``
        (sample, ddof 1), ``ci95`` (t-based half-width; NaN for fewer than 2 listeners) and the
        ``split`` and ``role`` when present. Ordered by (test, item, condition)."""
        extra = {"reference": ("reference", "first"), "coded": ("coded", "first")}
        if self.has_split:
            extra["split"] = ("split", "first")
        if self.has_roles:
            extra["role"] = ("role", "first")
        return stimulus_table(self.ratings, extra)

    def locate(self, message: str) -> str:
        """``"<manifest>: row R, column 'C': "`` for the first row naming the audio file that
        an error message starts with (empty when none does), to put in front of it."""
        for col in ("reference", "coded"):
            for path in self.ratings[col].unique():
                if message.startswith(f"{path}:"):
                    row = int(np.flatnonzero(self.ratings[col].eq(path).to_numpy())[0])
                    return f"{self.path or '<manifest>'}: row {row + 2}, column '{col}': "
        return ""

    def audio_files(self) -> list[str]:
        """Every distinct audio file, sorted."""
        return sorted(set(self.ratings["reference"]) | set(self.ratings["coded"]))


def _resolve(base: Path, p: str) -> str:
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (base / q).resolve())

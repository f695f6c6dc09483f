"""BeaqleJS MUSHRA results: one JSON file per listener.

A results file is a JSON array: one object per test set, ``{"TestID", "Runtime", "rating":
{label: score}, "filename": {label: path}}``, and last the user object ``{"UserName",
"UserEmail", "UserComment"}``. Test sets the listener was not given carry only ``TestID`` and
are skipped. In a BeaqleJS MUSHRA test the reference file is the ``Reference`` entry of the test
set's ``Files``; BeaqleJS also shuffles that same entry among the rated sliders, so the hidden
reference is rated under the label ``Reference`` too (its file = the reference).

Mapping: ``test`` = ``--test`` (the results carry no test name), ``item`` = ``TestID``,
``condition`` = the label, ``listener`` = the file name without suffix (``--listener-from
name``: ``UserName``). See ``docs/importers.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from gml.data.importers.base import (
    ImporterError,
    ImportResult,
    RatingRows,
    parse_score,
    pick_base,
    resolve_audio,
)

__all__ = ["REFERENCE_LABEL", "USER_FIELDS", "import_beaqlejs"]

#: The label of the reference (and of the hidden reference) in BeaqleJS MUSHRA test sets.
REFERENCE_LABEL = "Reference"
USER_FIELDS = ("UserName", "UserEmail", "UserComment")


def import_beaqlejs(
    files: Sequence[str | os.PathLike],
    *,
    test: str = "beaqlejs",
    out_dir: str | os.PathLike = ".",
    audio_root: str | os.PathLike | None = None,
    reference_label: str = REFERENCE_LABEL,
    listener_from: str = "file",
    check_audio: bool = True,
) -> ImportResult:
    """Import BeaqleJS MUSHRA results files.

    Args:
        files: One results file per listener.
        test: The ``test`` of every rating.
        out_dir: Folder the manifest will be written to.
        audio_root: Folder the ``filename`` paths are relative to. Default: the results file's
            folder, and for a path not found there the folder above it (BeaqleJS keeps results
            in ``results/`` beside the audio folder).
        reference_label: Label of the reference / hidden reference.
        listener_from: ``"file"`` (file name without suffix) or ``"name"`` (``UserName``).
        check_audio: Require every audio file to exist.

    Returns:
        The validated ratings, with extra columns ``role`` and ``runtime``.

    Raises:
        ImporterError: Naming the file, the test set and the field.
    """
    if listener_from not in ("file", "name"):
        raise ImporterError(f"beaqlejs: listener_from {listener_from!r}; expected file or name")
    if not files:
        raise ImporterError("beaqlejs: no results file given")
    if not str(test).strip():
        raise ImporterError("beaqlejs: --test is empty; expected a test name")
    rows = RatingRows()
    skipped = 0
    owner: dict[str, Path] = {}
    for f in files:
        path = Path(f)
        sets, user = _read(path)
        if listener_from == "name":
            name = str((user or {}).get("UserName") or "").strip()
            if not name:
                raise ImporterError(
                    f"{path}: user object: field 'UserName' missing or empty; expected a "
                    "listener name (or use the file name: --listener-from file)"
                )
            listener = name
        else:
            listener = path.stem
        if listener in owner:
            raise ImporterError(
                f"{path}: listener {listener!r} also comes from {owner[listener]}; expected one "
                "results file per listener"
                + (" (--listener-from file tells them apart)" if listener_from == "name" else "")
            )
        owner[listener] = path
        bases = [audio_root] if audio_root is not None else [path.parent, path.parent.parent]
        named = [
            v
            for _, ts in sets
            if isinstance(ts.get("filename"), dict)
            for v in ts["filename"].values()
            if isinstance(v, str)
        ]
        fallback = pick_base(named, bases)
        seen: dict[str, int] = {}
        for k, ts in sets:
            tid = str(ts["TestID"]).strip()
            where = f"{path}: test set [{k}] (TestID {tid!r})"
            if not tid:
                raise ImporterError(f"{where}: field 'TestID' is empty")
            if tid in seen:
                raise ImporterError(f"{where}: TestID also used by test set [{seen[tid]}]")
            seen[tid] = k
            if "rating" not in ts:
                skipped += 1  # a test set this listener was not given
                continue
            ratings, names = ts.get("rating"), ts.get("filename")
            if not isinstance(ratings, dict):
                raise ImporterError(f"{where}: field 'rating': expected an object label -> score")
            if not isinstance(names, dict):
                raise ImporterError(f"{where}: field 'filename': expected an object label -> file")
            if reference_label not in names:
                raise ImporterError(
                    f"{where}: field 'filename' has no {reference_label!r} label; expected the "
                    "MUSHRA reference (a MUSHRA test set; else give --reference-label)"
                )
            reference = _audio(
                names[reference_label], f"{where}, filename {reference_label!r}", bases, fallback
            )
            rows.name_audio(reference, f"{where}, field 'filename', label {reference_label!r}")
            for label, value in ratings.items():
                if label not in names:
                    raise ImporterError(
                        f"{where}: rating label {label!r} has no entry in 'filename'; expected "
                        "a file for every rated label"
                    )
                at = f"{where}, rating {label!r}"
                coded = _audio(names[label], f"{where}, filename {label!r}", bases, fallback)
                rows.name_audio(coded, f"{where}, field 'filename', label {label!r}")
                rows.add(
                    at,
                    test=str(test).strip(),
                    item=tid,
                    condition=str(label),
                    listener=listener,
                    score=parse_score(value, at),
                    reference=reference,
                    coded=coded,
                    role="hidden_reference" if label == reference_label else "",
                    runtime=ts.get("Runtime", ""),
                )
    notes = [f"skipped {skipped} test set(s) without ratings (not presented)"] if skipped else []
    source = ", ".join(str(f) for f in files)
    return rows.finish(source, out_dir, check_audio, notes=notes)


def _read(path: Path) -> tuple[list[tuple[int, dict]], dict | None]:
    """The test sets (with their index) and the user object of one results file."""
    if not path.is_file():
        raise ImporterError(f"{path}: results file not found; expected a BeaqleJS results file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ImporterError(
            f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except UnicodeDecodeError as err:
        raise ImporterError(f"{path}: not a text file ({err})") from None
    if not isinstance(doc, list):
        raise ImporterError(
            f"{path}: expected a JSON array of test sets and the user object, got a "
            f"{type(doc).__name__}"
        )
    sets, user = [], None
    for k, obj in enumerate(doc):
        if isinstance(obj, dict) and "TestID" in obj:
            sets.append((k, obj))
        elif isinstance(obj, dict) and any(f in obj for f in USER_FIELDS):
            if user is not None:
                raise ImporterError(f"{path}: element [{k}]: a second user object")
            user = obj
        else:
            raise ImporterError(
                f"{path}: element [{k}]: expected a test set (with TestID) or the user object "
                f"({', '.join(USER_FIELDS)})"
            )
    if not sets:
        raise ImporterError(f"{path}: no test set (no object with TestID)")
    return sets, user


def _audio(value: object, where: str, bases: list, fallback: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ImporterError(f"{where}: {value!r}; expected an audio file path")
    return resolve_audio(value, bases, fallback)

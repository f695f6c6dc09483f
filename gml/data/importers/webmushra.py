"""webMUSHRA results (``results/<testId>/mushra.csv``) plus the test's YAML configuration.

The results file has the columns ``session_test_id``, one column per questionnaire item
(``email, age, gender`` by default), ``session_uuid`` (absent in older webMUSHRA versions),
``trial_id``, ``rating_stimulus``, ``rating_score``, ``rating_time`` and ``rating_comment``:
one row per session x trial x stimulus, the header written once and later sessions appended.
The config's MUSHRA pages (``type: mushra``, possibly inside nested lists for randomised
groups) map each trial's ``reference`` and ``stimuli`` keys to audio files.

Mapping: ``test`` = the config's ``testId`` (= ``session_test_id``), ``item`` = ``trial_id``,
``condition`` = ``rating_stimulus``. ``reference`` is the hidden reference (coded file = the
reference), ``anchor35`` / ``anchor70`` are the low-pass anchors webMUSHRA makes in the browser,
rendered here by :mod:`gml.data.importers.anchors`. See ``docs/importers.md``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gml.data.importers.anchors import ANCHOR_CUTOFFS, render_lowpass_anchor
from gml.data.importers.base import (
    ImporterError,
    ImportResult,
    RatingRows,
    parse_score,
    pick_base,
    safe_name,
)
from gml.data.tables import read_table

__all__ = ["HIDDEN_REFERENCE", "MushraPage", "WebMushraConfig", "import_webmushra", "read_config"]

#: The ``rating_stimulus`` of the hidden reference.
HIDDEN_REFERENCE = "reference"
REQUIRED = ("session_test_id", "trial_id", "rating_stimulus", "rating_score")
KNOWN = (*REQUIRED, "session_uuid", "rating_time", "rating_comment")
_ROLE = {HIDDEN_REFERENCE: "hidden_reference", "anchor35": "low_anchor", "anchor70": "mid_anchor"}


@dataclass
class MushraPage:
    """One MUSHRA page of a webMUSHRA config.

    Attributes:
        id: The page ``id`` (= ``trial_id`` in the results).
        reference: Absolute path of the reference.
        stimuli: Stimulus key → absolute audio path.
        where: The page's place in the config, for messages.
    """

    id: str
    reference: str
    stimuli: dict[str, str]
    where: str


@dataclass
class WebMushraConfig:
    """The parts of a webMUSHRA config the importer needs.

    Attributes:
        path: The YAML file.
        test_id: ``testId``.
        name: ``testname`` ("" when absent).
        pages: MUSHRA pages by id.
    """

    path: Path
    test_id: str
    name: str
    pages: dict[str, MushraPage]


def read_config(
    path: str | os.PathLike, audio_root: str | os.PathLike | None = None
) -> WebMushraConfig:
    """Read a webMUSHRA YAML config.

    Args:
        path: The YAML file.
        audio_root: Folder the config's audio paths are relative to. Default: the config's
            folder, and for a path not found there the folder above it (webMUSHRA's own layout,
            ``configs/x.yaml`` with paths relative to the webMUSHRA folder). A file found in
            neither is reported under the one of the two that holds most of the others.

    Raises:
        ImporterError: Missing file, invalid YAML, or a missing / mistyped field (named).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ImporterError(f"{path}: config file not found; expected a webMUSHRA YAML config")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ImporterError(f"{path}: not valid YAML{at}: {problem}") from None
    except UnicodeDecodeError as err:
        raise ImporterError(f"{path}: not a text file ({err})") from None
    if not isinstance(doc, dict):
        raise ImporterError(f"{path}: expected a YAML mapping with testId and pages")
    for key in ("testId", "pages"):
        if key not in doc:
            raise ImporterError(f"{path}: field '{key}' missing; expected a webMUSHRA config")
    test_id = "" if doc["testId"] is None else str(doc["testId"]).strip()
    if not test_id:
        raise ImporterError(f"{path}: field 'testId' is empty")
    if not isinstance(doc["pages"], list):
        raise ImporterError(f"{path}: field 'pages': expected a list of pages")
    bases = [audio_root] if audio_root is not None else [path.parent, path.parent.parent]
    raw = []  # every audio path, to find the base most of them are under
    for _, page in _walk(doc["pages"], "pages"):
        if isinstance(page, dict) and page.get("type") == "mushra":
            stimuli = page.get("stimuli")
            values = [
                page.get("reference"),
                *(stimuli.values() if isinstance(stimuli, dict) else []),
            ]
            raw += [v for v in values if isinstance(v, str)]
    fallback = pick_base(raw, bases)
    pages: dict[str, MushraPage] = {}
    for where, page in _walk(doc["pages"], "pages"):
        if not isinstance(page, dict) or page.get("type") != "mushra":
            continue
        label = f"{path}: {where}"
        if page.get("id") is None or not str(page["id"]).strip():
            raise ImporterError(f"{label}: field 'id' missing; expected the trial id")
        pid = str(page["id"]).strip()
        label = f"{path}: page '{pid}'"
        if pid in pages:
            raise ImporterError(f"{label}: id used by two MUSHRA pages; expected unique ids")
        ref = page.get("reference")
        if not isinstance(ref, str) or not ref.strip():
            raise ImporterError(f"{label}: field 'reference': expected an audio file path")
        stimuli = page.get("stimuli")
        if not isinstance(stimuli, dict) or not stimuli:
            raise ImporterError(
                f"{label}: field 'stimuli': expected a mapping of stimulus key to audio file"
            )
        files = {}
        for key, value in stimuli.items():
            if not isinstance(value, str) or not value.strip():
                raise ImporterError(
                    f"{label}: field 'stimuli', key '{key}': expected an audio file path"
                )
            files[str(key).strip()] = _locate(value, bases, fallback)
        pages[pid] = MushraPage(pid, _locate(ref, bases, fallback), files, label)
    if not pages:
        raise ImporterError(f"{path}: no page with 'type: mushra'; expected a MUSHRA test")
    name = doc.get("testname")
    return WebMushraConfig(path, test_id, "" if name is None else str(name), pages)


def _locate(path: str, bases: list, fallback: str | os.PathLike) -> str:
    """The absolute path of an audio file named in a config, as
    :func:`~gml.data.importers.base.resolve_audio` finds it (the first base folder that holds
    it, else under ``fallback``) but with symbolic links kept: audio reached through a link
    below the manifest's folder (``configs/resources -> /data/audio``) is then written
    relative to the manifest, as for any file below it, not as the link's target."""
    p = Path(path.strip()).expanduser()
    if p.is_absolute():
        return os.path.abspath(p)
    for base in bases:
        candidate = os.path.abspath(Path(base) / p)
        if os.path.isfile(candidate):
            return candidate
    return os.path.abspath(Path(fallback) / p)


def _walk(pages: list, where: str) -> Iterator[tuple[str, Any]]:
    """Every page, also inside nested lists (webMUSHRA's randomised groups: ``[random, ...]``)."""
    for k, page in enumerate(pages):
        if isinstance(page, list):
            yield from _walk(page, f"{where}[{k}]")
        else:
            yield f"{where}[{k}]", page


def import_webmushra(
    results: Sequence[str | os.PathLike],
    configs: Sequence[str | os.PathLike | WebMushraConfig],
    *,
    out_dir: str | os.PathLike = ".",
    audio_root: str | os.PathLike | None = None,
    anchor_dir: str | os.PathLike | None = None,
    check_audio: bool = True,
    keep_questionnaire: bool = False,
) -> ImportResult:
    """Import webMUSHRA results files (several tests make one manifest).

    Args:
        results: ``mushra.csv`` files.
        configs: The tests' YAML configs (or read configs); each results row goes to the config
            whose ``testId`` equals its ``session_test_id``.
        out_dir: Folder the manifest will be written to.
        audio_root: See :func:`read_config`.
        anchor_dir: Where rendered anchors go (default ``out_dir/anchors``), as
            ``<testId>/<trial>_anchor35.wav``.
        check_audio: Require every audio file to exist (else they are only counted).
        keep_questionnaire: Carry the questionnaire answers as ``q_<name>`` columns (they may be
            personal data such as e-mail addresses, hence off by default).

    Returns:
        The validated ratings, with extra columns ``role``, ``rating_time`` and
        ``rating_comment``.

    Raises:
        ImporterError: Naming the file, row and column (or the config page and field).
    """
    if not results:
        raise ImporterError("webmushra: no results file given")
    if not configs:
        raise ImporterError("webmushra: no --config given; expected the test's YAML config")
    by_id: dict[str, WebMushraConfig] = {}
    for c in configs:
        cfg = c if isinstance(c, WebMushraConfig) else read_config(c, audio_root)
        if cfg.test_id in by_id:
            raise ImporterError(
                f"{cfg.path}: testId {cfg.test_id!r} is also the testId of {by_id[cfg.test_id].path}; "
                "expected one config per test"
            )
        by_id[cfg.test_id] = cfg
    out_dir = Path(out_dir)
    anchor_dir = Path(anchor_dir) if anchor_dir is not None else out_dir / "anchors"
    rows = RatingRows()
    for cfg in by_id.values():
        for page in cfg.pages.values():
            rows.name_audio(page.reference, f"{page.where}, field 'reference'")
            for key, p in page.stimuli.items():
                rows.name_audio(p, f"{page.where}, field 'stimuli', key '{key}'")
    anchors: dict[str, tuple[str, float]] = {}  # anchor path -> (reference, cutoff)
    sessions: dict[str, int] = {}  # derived sessions per test, across files
    notes = []
    for res in results:
        derived = _read_results(
            Path(res), by_id, rows, anchors, anchor_dir, sessions, keep_questionnaire
        )
        if derived:
            notes.append(
                f"{res}: no session_uuid; {derived} session(s) told apart by order and "
                "questionnaire answers, listener ids <testId>-s<NNN>[-<hash>]"
            )
    rows.check(check_audio, pending=anchors)
    written = []
    for out, (ref, cutoff) in anchors.items():
        if not os.path.isfile(ref):
            continue  # only with check_audio off: the anchor stays missing, and is counted
        written.append(render_lowpass_anchor(ref, out, cutoff))
    if written:
        notes.append(f"rendered {len(written)} low-pass anchor(s) under {anchor_dir}")
    source = ", ".join(str(r) for r in results)
    return rows.finish(source, out_dir, check_audio, checked=True, anchors=written, notes=notes)


def _read_results(
    path: Path,
    configs: dict[str, WebMushraConfig],
    rows: RatingRows,
    anchors: dict[str, tuple[str, float]],
    anchor_dir: Path,
    sessions: dict[str, int],
    keep_questionnaire: bool,
) -> int:
    """Add the ratings of one results file; returns how many sessions had no uuid."""
    if not path.is_file():
        raise ImporterError(f"{path}: results file not found; expected webMUSHRA's mushra.csv")
    expected = f"expected webMUSHRA's mushra.csv with {', '.join(REQUIRED)}"
    df = read_table(path, REQUIRED, ImporterError, rows="ratings", hint=expected)
    questionnaire = [c for c in df.columns if c not in KNOWN]
    listeners, derived = _listeners(df, questionnaire, sessions)
    for i, rec in enumerate(df.to_dict("records")):
        where = f"{path}: row {i + 2}"
        test = rec["session_test_id"].strip()
        cfg = configs.get(test)
        if cfg is None:
            raise ImporterError(
                f"{where}, column 'session_test_id': {test!r} is the testId of no --config "
                f"(given: {', '.join(repr(t) for t in configs)})"
            )
        trial = rec["trial_id"].strip()
        page = cfg.pages.get(trial)
        if page is None:
            raise ImporterError(
                f"{where}, column 'trial_id': {trial!r} is not a MUSHRA page of {cfg.path} "
                f"(its pages: {', '.join(cfg.pages)})"
            )
        stim = rec["rating_stimulus"].strip()
        if stim in page.stimuli:
            coded = page.stimuli[stim]
        elif stim == HIDDEN_REFERENCE:
            coded = page.reference
        elif stim in ANCHOR_CUTOFFS:
            coded = str((anchor_dir / safe_name(test) / f"{safe_name(trial)}_{stim}.wav").resolve())
            anchors.setdefault(coded, (page.reference, ANCHOR_CUTOFFS[stim]))
        else:
            expected = [*page.stimuli, HIDDEN_REFERENCE, *ANCHOR_CUTOFFS]
            raise ImporterError(
                f"{where}, column 'rating_stimulus': {stim!r} is not a stimulus of page "
                f"{trial!r} in {cfg.path} (expected one of {', '.join(expected)})"
            )
        extra = {"role": _ROLE.get(stim, "") if stim not in page.stimuli else ""}
        extra["rating_time"] = rec.get("rating_time", "")
        extra["rating_comment"] = rec.get("rating_comment", "")
        if keep_questionnaire:
            extra.update({f"q_{q}": rec[q] for q in questionnaire})
        rows.add(
            where,
            test=cfg.test_id,
            item=trial,
            condition=stim,
            listener=listeners[i],
            score=parse_score(rec["rating_score"], f"{where}, column 'rating_score'"),
            reference=page.reference,
            coded=coded,
            **extra,
        )
    return derived


def _listeners(
    df: pd.DataFrame, questionnaire: list[str], sessions: dict[str, int]
) -> tuple[list[str], int]:
    """One listener id per row: the session's uuid, else a derived per-session id.

    Without a uuid, a new session starts where the test id or the questionnaire answers change,
    or where the current session rates a (trial, stimulus) it already rated: webMUSHRA appends
    each session's rows as one block. The id is ``<testId>-s<NNN>`` (sessions numbered per test
    in file order, across files) plus ``-<6 hex digits of a hash of the answers>`` when the file
    has questionnaire columns, which tells sessions apart even if files are reordered.
    """
    uuids = df["session_uuid"].str.strip() if "session_uuid" in df.columns else None
    ids: list[str] = []
    derived = 0
    current: tuple | None = None
    seen: set[tuple[str, str]] = set()
    sid = ""
    for i, rec in enumerate(df.to_dict("records")):
        if uuids is not None and uuids.iloc[i]:
            ids.append(uuids.iloc[i])
            current = None
            continue
        test = rec["session_test_id"].strip()
        answers = tuple(rec[q] for q in questionnaire)
        rated = (rec["trial_id"].strip(), rec["rating_stimulus"].strip())
        if (test, answers) != current or rated in seen:
            current, seen = (test, answers), set()
            sessions[test] = sessions.get(test, 0) + 1
            derived += 1
            sid = f"{test}-s{sessions[test]:03d}"
            if questionnaire:
                sid += "-" + hashlib.sha1("\x1f".join(answers).encode()).hexdigest()[:6]
        seen.add(rated)
        ids.append(sid)
    return ids, derived

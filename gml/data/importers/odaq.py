"""ODAQ-style MUSHRA results: one XML file per listener (and session).

Layout (as written by the listening-test app used for ODAQ)::

    <MUSHRA>
      <info subjectName="..." testName="..." stimuliDirectory="..." .../>
      <trials>
        <trial trialName="..." trialSeconds="..." referencePlays="...">
          <testFile fileName="..." score="..." plays="..."/>
          ...

There is no reference element: the audio of a trial lies in ``<audio-root>/<trialName>/``
(or directly in ``<audio-root>``), and the reference is the file whose name contains
``reference`` (``--reference-pattern``, a regular expression searched case-insensitively).
That file is also rated, as a ``testFile``: it is the hidden reference. Files matching ``lp70``
/ ``lp35`` are the mid / low anchors.

Mapping: ``test`` = ``testName`` (``--test`` overrides), ``item`` = ``trialName``,
``condition`` = ``fileName`` without its suffix, ``listener`` = ``subjectName``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePath

from gml.data.importers.base import (
    ImporterError,
    ImportResult,
    RatingRows,
    parse_score,
    resolve_audio,
)

__all__ = ["LOW_ANCHOR_PATTERN", "MID_ANCHOR_PATTERN", "REFERENCE_PATTERN", "import_odaq"]

REFERENCE_PATTERN = r"reference"
MID_ANCHOR_PATTERN = r"lp70"
LOW_ANCHOR_PATTERN = r"lp35"


def import_odaq(
    files: Sequence[str | os.PathLike],
    *,
    out_dir: str | os.PathLike = ".",
    audio_root: str | os.PathLike | None = None,
    reference_pattern: str = REFERENCE_PATTERN,
    mid_anchor_pattern: str = MID_ANCHOR_PATTERN,
    low_anchor_pattern: str = LOW_ANCHOR_PATTERN,
    test: str | None = None,
    check_audio: bool = True,
) -> ImportResult:
    """Import ODAQ-style MUSHRA XML results.

    Args:
        files: XML files (one per listener or session).
        out_dir: Folder the manifest will be written to.
        audio_root: Folder of the audio: a file is looked up as ``<root>/<trialName>/<fileName>``,
            then ``<root>/<fileName>``. Default: the XML file's folder.
        reference_pattern: Regular expression (searched, case-insensitive) that marks the
            reference among a trial's files.
        mid_anchor_pattern: Same for the mid anchor (``role`` ``mid_anchor``; "" for none).
        low_anchor_pattern: Same for the low anchor (``role`` ``low_anchor``; "" for none).
        test: The ``test`` of every rating (default: each file's ``testName``).
        check_audio: Require every audio file to exist.

    Returns:
        The validated ratings, with extra columns ``role`` and ``plays``.

    Raises:
        ImporterError: Naming the file, the trial / testFile and the attribute.
    """
    if not files:
        raise ImporterError("odaq: no XML file given")
    patterns = {}
    for role, pat, flag in (
        ("hidden_reference", reference_pattern, "--reference-pattern"),
        ("mid_anchor", mid_anchor_pattern, "--mid-anchor-pattern"),
        ("low_anchor", low_anchor_pattern, "--low-anchor-pattern"),
    ):
        try:
            patterns[role] = re.compile(pat, re.IGNORECASE) if pat else None
        except re.error as err:
            raise ImporterError(
                f"odaq: {flag} {pat!r} is not a regular expression ({err})"
            ) from None
    if patterns["hidden_reference"] is None:
        raise ImporterError("odaq: --reference-pattern is empty; expected a regular expression")
    rows = RatingRows()
    notes = []
    for f in files:
        path = Path(f)
        root = _parse(path)
        info = root.find("info")
        attrs = info.attrib if info is not None else {}
        listener = (attrs.get("subjectName") or "").strip()
        if not listener:
            listener = path.stem
            notes.append(f"{path}: no info/@subjectName; listener id {listener!r} (file name)")
        test_name = (test or attrs.get("testName") or "").strip()
        if not test_name:
            raise ImporterError(
                f"{path}: info: attribute 'testName' missing or empty; expected the test name "
                "(or give --test)"
            )
        base = Path(audio_root) if audio_root is not None else path.parent
        trials = root.findall(".//trial")
        if not trials:
            raise ImporterError(f"{path}: no <trial> element; expected <trials><trial ...>")
        for k, trial in enumerate(trials):
            name = (trial.get("trialName") or "").strip()
            if not name:
                raise ImporterError(f"{path}: trial [{k}]: attribute 'trialName' missing or empty")
            where = f"{path}: trial {name!r}"
            tfs = trial.findall("testFile")
            if not tfs:
                raise ImporterError(f"{where}: no <testFile> element")
            entries = []
            for j, tf in enumerate(tfs):
                fname = (tf.get("fileName") or "").strip()
                if not fname:
                    raise ImporterError(
                        f"{where}, testFile [{j}]: attribute 'fileName' missing or empty"
                    )
                at = f"{where}, testFile {fname!r}"
                if tf.get("score") is None:
                    raise ImporterError(f"{at}: attribute 'score' missing; expected a score 0-100")
                score = parse_score(tf.get("score"), f"{at}, attribute 'score'")
                audio = resolve_audio(fname, [base / name, base])
                rows.name_audio(audio, f"{at}, attribute 'fileName'")
                entries.append((at, fname, score, audio, (tf.get("plays") or "").strip()))
            refs = [e for e in entries if patterns["hidden_reference"].search(e[1])]
            if len(refs) != 1:
                found = ", ".join(e[1] for e in refs) or "none"
                raise ImporterError(
                    f"{where}: {len(refs)} testFiles match the reference pattern "
                    f"{reference_pattern!r} ({found}); expected exactly one (give "
                    "--reference-pattern)"
                )
            reference = refs[0][3]
            for at, fname, score, audio, plays in entries:
                rows.add(
                    at,
                    test=test_name,
                    item=name,
                    condition=PurePath(fname.replace("\\", "/")).stem,
                    listener=listener,
                    score=score,
                    reference=reference,
                    coded=audio,
                    role=_role(fname, patterns),
                    plays=plays,
                )
    source = ", ".join(str(f) for f in files)
    return rows.finish(source, out_dir, check_audio, notes=notes)


def _role(fname: str, patterns: dict[str, re.Pattern | None]) -> str:
    for role, pat in patterns.items():  # reference first: it wins over an anchor pattern
        if pat is not None and pat.search(fname):
            return role
    return ""


def _parse(path: Path) -> ET.Element:
    if not path.is_file():
        raise ImporterError(f"{path}: results file not found; expected a MUSHRA XML file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        line, col = err.position
        reason = str(err).split(":")[0]
        raise ImporterError(
            f"{path}: not valid XML at line {line}, column {col + 1}: {reason}"
        ) from None
    if root.tag.lower() != "mushra":
        raise ImporterError(f"{path}: root element <{root.tag}>; expected <MUSHRA>")
    return root

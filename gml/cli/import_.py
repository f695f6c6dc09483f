"""``gml import``: listening-test results in their native format → a gml manifest.

::

    gml import webmushra RESULTS.csv... --config TEST.yaml... --out manifest.csv
    gml import beaqlejs RESULT_FILE... [--test NAME] --out manifest.csv
    gml import odaq XML_FILE... --audio-root DIR --out manifest.csv
    gml import csv FILE --map score=Ratingscore,listener=Listener,... --out manifest.csv

Common options: ``--no-audio`` (ratings without audio: statistics only), ``--screen`` (ITU-R
BS.1534-3 post-screening, with ``--hidden-reference NAME`` / ``--anchor NAME`` where the
format does not say which conditions those are). The work is done by
:mod:`gml.data.importers`; formats and mappings are described in ``docs/importers.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gml.errors import GMLError

FORMATS = ("webmushra", "beaqlejs", "odaq", "csv")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="manifest CSV to write (atomically)")
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="import ratings whose audio is missing (statistics only; the manifest is then "
        "read with audio checks off)",
    )
    g = p.add_argument_group("post-screening (ITU-R BS.1534-3; off by default)")
    g.add_argument(
        "--screen",
        action="store_true",
        help="drop listeners who scored the hidden reference below 90, or the mid anchor "
        "above 90, in more than 15 %% of their trials (per test)",
    )
    g.add_argument(
        "--hidden-reference",
        metavar="NAME",
        help="condition that is the hidden reference (a name or a regular expression matching "
        "whole names); also fills the manifest's role column",
    )
    g.add_argument("--anchor", metavar="NAME", help="condition that is the mid-range anchor")
    g.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="NAME=ROLE",
        help="mark a condition (a name or a regular expression matching whole names) with a "
        "role: hidden_reference, low_anchor, mid_anchor or anchor (any other anchor); "
        "repeatable. Evaluations then report the systems under test apart from them",
    )
    g.add_argument(
        "--screening-report", metavar="CSV", help="also write the per-listener screening table"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gml import",
        description="Turn listening-test results (webMUSHRA, BeaqleJS, ODAQ XML or any CSV "
        "table) into a gml manifest: one row per rating with test, item, condition, listener, "
        "score, reference and coded audio.",
    )
    sub = p.add_subparsers(dest="format", metavar="FORMAT", required=True)

    w = sub.add_parser(
        "webmushra",
        help="webMUSHRA results/<testId>/mushra.csv + the test's YAML config",
        description="webMUSHRA results; renders the browser-made anchor35/anchor70 low-pass "
        "anchors next to the manifest.",
    )
    w.add_argument("results", nargs="+", metavar="RESULTS_CSV", help="mushra.csv file(s)")
    w.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="TEST_YAML",
        help="webMUSHRA config of a test (repeat for several tests)",
    )
    w.add_argument(
        "--audio-root",
        help="folder the config's audio paths are relative to (default: the config's folder, "
        "then the one above it)",
    )
    w.add_argument(
        "--anchor-dir", help="where rendered anchors go (default: anchors/ beside --out)"
    )
    w.add_argument(
        "--keep-questionnaire",
        action="store_true",
        help="carry the questionnaire answers as q_<name> columns (may be personal data)",
    )
    _common(w)

    b = sub.add_parser("beaqlejs", help="BeaqleJS MUSHRA results, one JSON file per listener")
    b.add_argument("files", nargs="+", metavar="RESULT_FILE")
    b.add_argument("--test", default="beaqlejs", help="test name (default: beaqlejs)")
    b.add_argument(
        "--audio-root",
        help="folder the filename paths are relative to (default: the results file's folder, "
        "then the one above it)",
    )
    b.add_argument(
        "--reference-label", default="Reference", help="label of the reference (default: Reference)"
    )
    b.add_argument(
        "--listener-from",
        choices=("file", "name"),
        default="file",
        help="listener id: the file name without suffix (default) or the UserName field",
    )
    _common(b)

    o = sub.add_parser("odaq", help="ODAQ-style <MUSHRA> XML files, one per listener")
    o.add_argument("files", nargs="+", metavar="XML_FILE")
    o.add_argument(
        "--audio-root",
        help="audio folder: files are <DIR>/<trialName>/<fileName> or <DIR>/<fileName> "
        "(default: the XML file's folder)",
    )
    o.add_argument(
        "--reference-pattern",
        default="reference",
        help="regular expression (case-insensitive) that marks a trial's reference file "
        "(default: reference)",
    )
    o.add_argument("--mid-anchor-pattern", default="lp70", help="mid anchor files (default: lp70)")
    o.add_argument("--low-anchor-pattern", default="lp35", help="low anchor files (default: lp35)")
    o.add_argument("--test", help="test name (default: each file's info/@testName)")
    _common(o)

    c = sub.add_parser("csv", help="any CSV table of individual ratings, with a column mapping")
    c.add_argument("file", metavar="FILE")
    c.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COL=VALUE,...",
        help="manifest column from a source column (score=Ratingscore), a constant "
        "(test=sisec08) or a template (reference=audio/{Trial}/orig.wav); repeatable",
    )
    c.add_argument("--sep", default=",", help="field separator (default ','; 'tab' for TSV)")
    c.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COL=VALUE",
        help="import only rows whose column has this exact text (COL!=VALUE: has not); "
        "repeatable, all must hold",
    )
    c.add_argument(
        "--audio-root", help="folder audio paths are relative to (default: the table's folder)"
    )
    c.add_argument(
        "--drop-unmapped",
        action="store_true",
        help="leave out source columns no mapping uses (default: carry them)",
    )
    _common(c)
    return p


def main(argv: list[str]) -> None:
    """Entry point of ``gml import``."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise GMLError(f"import: --out {out}: expected a .csv file name")
    if out.is_dir():
        raise GMLError(f"import: --out {out}: is a folder; expected a .csv file name")
    if args.screening_report and not args.screen:
        raise GMLError("import: --screening-report needs --screen")
    from gml.atomic import atomic_write_text
    from gml.data.importers import (
        apply_screening,
        assign_roles,
        import_beaqlejs,
        import_odaq,
        import_table,
        import_webmushra,
        parse_roles,
        write_manifest,
    )
    from gml.data.manifest import Manifest

    check = not args.no_audio
    out_dir = out.parent
    if args.format == "webmushra":
        result = import_webmushra(
            args.results,
            args.config,
            out_dir=out_dir,
            audio_root=args.audio_root,
            anchor_dir=args.anchor_dir,
            check_audio=check,
            keep_questionnaire=args.keep_questionnaire,
        )
    elif args.format == "beaqlejs":
        result = import_beaqlejs(
            args.files,
            test=args.test,
            out_dir=out_dir,
            audio_root=args.audio_root,
            reference_label=args.reference_label,
            listener_from=args.listener_from,
            check_audio=check,
        )
    elif args.format == "odaq":
        result = import_odaq(
            args.files,
            out_dir=out_dir,
            audio_root=args.audio_root,
            reference_pattern=args.reference_pattern,
            mid_anchor_pattern=args.mid_anchor_pattern,
            low_anchor_pattern=args.low_anchor_pattern,
            test=args.test,
            check_audio=check,
        )
    else:
        sep = "\t" if args.sep.lower() in ("tab", "\\t") else args.sep
        result = import_table(
            args.file,
            args.map,
            out_dir=out_dir,
            audio_root=args.audio_root,
            check_audio=check,
            sep=sep,
            drop_unmapped=args.drop_unmapped,
            where=args.where,
        )
    if args.hidden_reference is not None or args.anchor is not None or args.role:
        ratings = assign_roles(
            result.manifest.ratings, args.hidden_reference, args.anchor, parse_roles(args.role)
        )
        result.manifest = Manifest(ratings, result.manifest.path)
    if args.screen:
        result = apply_screening(result)
    write_manifest(result.manifest, out)
    print(result.summary())
    if result.screening is not None and args.screening_report:
        report = Path(args.screening_report)
        atomic_write_text(report, result.screening.table.to_csv(index=False))
        print(f"gml: wrote {report}")
    print(f"gml: wrote {out} ({len(result.manifest.ratings)} ratings)")

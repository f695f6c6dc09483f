"""``gml compare``: compare two codecs over the same references with a trained listener.

::

    gml compare --ckpt M --reference-dir R --a DIR_A --b DIR_B [--listeners N] [--panels K]
                [--seed S] [--max-listeners 100] [--out compare-report/report.md] [--device D]

Files are matched by name across the three folders; references without a file in A or in B
are listed on stderr and left out. The figures (predicted A − B per item and over all items,
its CI, the simulated power of a paired t-test with N listeners and the N for 80 % power) are
computed by :mod:`gml.compare`; this module parses, checks, prints and chooses the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gml.cli.common import add_listener_arguments, load_listener
from gml.errors import GMLError

DEFAULT_OUT = Path("compare-report") / "report.md"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gml compare",
        # (a description is printed as written; only help strings are %-formatted)
        description="Compare codecs A and B over the same references: the predicted mean "
        "difference A - B per item and over all items, its 95 % CI for N listeners, the "
        "power of a paired t-test with N listeners (simulated panels) and the N that reaches "
        f"80 % power. Writes {DEFAULT_OUT} (with compare.png, per_item.csv and "
        "power_curves.csv beside it) unless --out says otherwise.",
    )
    p.add_argument("--reference-dir", required=True, help="folder of references")
    p.add_argument("--a", required=True, metavar="DIR_A", help="folder of codec A's files")
    p.add_argument("--b", required=True, metavar="DIR_B", help="folder of codec B's files")
    p.add_argument("--listeners", type=int, default=20, help="panel size N (default 20)")
    p.add_argument(
        "--panels", type=int, default=2000, help="simulated panels K per item (default 2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated panels")
    p.add_argument(
        "--max-listeners",
        type=int,
        default=100,
        help="largest N searched for 80 %% power (default 100)",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"Markdown report; compare.png, per_item.csv and power_curves.csv go beside it "
        f"(default {DEFAULT_OUT})",
    )
    add_listener_arguments(p)
    return p


def main(argv: list[str]) -> None:
    """Entry point of ``gml compare``."""
    args = build_parser().parse_args(argv)
    if args.listeners < 2:
        raise GMLError(f"compare: --listeners {args.listeners}; expected 2 or more")
    if args.max_listeners < 2:
        raise GMLError(f"compare: --max-listeners {args.max_listeners}; expected 2 or more")
    if args.panels < 1:
        raise GMLError(f"compare: --panels {args.panels}; expected 1 or more")
    if args.seed < 0:
        raise GMLError(f"compare: --seed {args.seed}; expected 0 or more")
    out = Path(args.out)
    if out.suffix.lower() != ".md":
        raise GMLError(f"compare: --out {out}: expected a Markdown (.md) file name")

    from gml.compare import (
        compare_matched,
        format_overall,
        format_table,
        match_items,
        write_report,
    )

    # the folders are checked before the model loads, so that mistakes answer at once
    match = match_items(args.reference_dir, args.a, args.b)
    for note in match.notes:
        print(f"gml compare: {note}", file=sys.stderr)

    listener = load_listener(args)
    comparison = compare_matched(
        listener,
        match,
        args.listeners,
        args.panels,
        args.seed,
        args.max_listeners,
        progress=False if args.no_progress else None,
    )
    print(format_table(comparison))
    print(format_overall(comparison))
    paths = write_report(comparison, out)
    print(f"gml: wrote {paths['report']} ({paths['plot'].name}, {paths['csv'].name} beside it)")

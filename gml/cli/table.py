"""``gml table``: parses its options, and prints and writes :mod:`gml.table`'s comparison."""

from __future__ import annotations

import argparse
from pathlib import Path

from gml.metrics import TABLE_COLUMNS
from gml.report import atomic_write_text
from gml.table import COVERAGE_COLUMNS, load_baselines, load_runs, render


def main(argv: list[str]) -> None:
    """Entry point of ``gml table``."""
    p = argparse.ArgumentParser(
        prog="gml table",
        description="One Table-I-style comparison of several runs (gml test or gml cv outputs): one "
        "row per run, metric columns per test set, the best value per column marked.",
    )
    p.add_argument("--runs", nargs="+", required=True, help="run folders or metrics.json files")
    p.add_argument("--names", nargs="+", help="row names (default: the run's name)")
    p.add_argument("--md", help="also write the Markdown table to this file")
    p.add_argument("--csv", help="also write a CSV table to this file")
    p.add_argument(
        "--coverage",
        action="store_true",
        help="add the coverage of the central 50 %% / 90 %% intervals (best: closest to nominal)",
    )
    p.add_argument(
        "--no-baselines",
        action="store_true",
        help="leave out the baseline rows (condition oracle, constant spread, noise ceiling)",
    )
    args = p.parse_args(argv)
    runs = load_runs(args.runs, args.names)
    bases = [] if args.no_baselines else load_baselines(args.runs)
    columns = list(TABLE_COLUMNS) + (COVERAGE_COLUMNS if args.coverage else [])
    md = render(runs, "md", columns, bases)
    print(md, end="")
    if args.md:
        atomic_write_text(Path(args.md), md)
    if args.csv:
        atomic_write_text(Path(args.csv), render(runs, "csv", columns, bases))

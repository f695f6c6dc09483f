"""One Table-I-style comparison of several runs (the library behind ``gml table``).

Each run is a ``metrics.json`` written by ``gml test`` or ``gml cv`` (or a folder holding one:
``cv/metrics.json``, ``test-best/metrics.json`` or ``metrics.json`` are looked for, in that
order). One row per run, the metric columns per test set, the best value per column marked
(bold in Markdown, ``*`` in CSV). Values a model cannot produce (CI columns of the non-GML
baseline) print as ``n/a`` and are never "best". Below the runs, the baselines of
:mod:`gml.baselines` (condition oracle, constant spread, noise ceiling) of the first run that
has them, in italics and never marked best: they come from the data, not from a model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from gml import text_table
from gml.errors import GMLError
from gml.metrics import TABLE_COLUMNS
from gml.report import fmt

CANDIDATES = ("cv/metrics.json", "test-best/metrics.json", "metrics.json")


#: ``--coverage`` columns: share of individual scores inside the central 50 % / 90 % interval.
COVERAGE_COLUMNS = [("coverage_50", "cov50", 0.5), ("coverage_90", "cov90", 0.9)]


def find_metrics(path: str | Path) -> Path:
    """The ``metrics.json`` a run path names."""
    p = Path(path)
    if p.is_file():
        return p
    for c in CANDIDATES:
        if (p / c).is_file():
            return p / c
    raise GMLError(
        f"{p}: no metrics.json found (looked for {', '.join(CANDIDATES)}); run 'gml test' or 'gml cv' first"
    )


def load_runs(paths: list[str], names: list[str] | None = None) -> list[tuple[str, dict]]:
    """``[(name, {test set: {metric: value}})]`` for each run."""
    runs = []
    for i, path in enumerate(paths):
        f = find_metrics(path)
        try:
            data = json.loads(f.read_text())
            sets = data["test_sets"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise GMLError(f"{f}: not a gml metrics file ({err})") from None
        name = names[i] if names and i < len(names) else data.get("name") or Path(path).name
        runs.append(
            (
                name,
                {
                    t: {k: (math.nan if v is None else v) for k, v in r.items()}
                    for t, r in sets.items()
                },
            )
        )
    return runs


def load_baselines(paths: list[str]) -> list[tuple[str, dict]]:
    """``[(baseline, {test set: {metric: value}})]`` from the first run with baselines."""
    for path in paths:
        data = json.loads(find_metrics(path).read_text())
        per_set = data.get("baselines") or {}
        if per_set:
            names = [b for per in per_set.values() for b in per]
            out = []
            for b in dict.fromkeys(names):
                sets = {t: per[b] for t, per in per_set.items() if b in per}
                sets = {
                    t: {k: (math.nan if v is None else v) for k, v in r.items()}
                    for t, r in sets.items()
                }
                out.append((f"baseline: {b}", sets))
            return out
    return []


def best_marks(runs, test_sets, columns) -> set[tuple[int, str, str]]:
    """(run index, test set, metric) of the best finite value in each column."""
    marks = set()
    for t in test_sets:
        for key, _, higher in columns:
            if higher is None:
                continue
            vals = [(i, r.get(t, {}).get(key, math.nan)) for i, (_, r) in enumerate(runs)]
            vals = [(i, v) for i, v in vals if v is not None and math.isfinite(v)]
            if not vals:
                continue
            if not isinstance(higher, bool):  # a target value: the closest is best
                best = min(abs(v - higher) for _, v in vals)
                marks |= {(i, t, key) for i, v in vals if abs(v - higher) == best}
                continue
            best = max(v for _, v in vals) if higher else min(v for _, v in vals)
            marks |= {(i, t, key) for i, v in vals if v == best}
    return marks


def render(runs, fmt_name: str = "md", columns=None, baselines=()) -> str:
    """The table as Markdown (``md``) or CSV (``csv``); ``baselines`` rows (see
    :func:`load_baselines`) follow the runs, never marked best."""
    columns = columns or TABLE_COLUMNS
    test_sets = sorted({t for _, r in runs for t in r})
    marks = best_marks(runs, test_sets, columns)
    n_runs = len(runs)
    runs = list(runs) + list(baselines)
    header = ["model"] + [f"{t} {h}" for t in test_sets for _, h, _ in columns]
    rows = []
    for i, (name, res) in enumerate(runs):
        row = [name]
        for t in test_sets:
            for key, _, _ in columns:
                cell = fmt(
                    res.get(t, {}).get(key, math.nan), 3 if key != "ci_rmse" and key != "nll" else 2
                )
                if (i, t, key) in marks:
                    cell = f"**{cell}**" if fmt_name == "md" else f"{cell}*"
                elif i >= n_runs and fmt_name == "md" and cell != "n/a":
                    cell = f"*{cell}*"
                row.append(cell)
        rows.append(row)
    if fmt_name == "csv":
        return text_table.csv_text(header, rows)
    arrows = {
        k: ("" if h is None else f"→{h:g}" if not isinstance(h, bool) else "↑" if h else "↓")
        for k, _, h in columns
    }
    header = ["model"] + [f"{t} {h} {arrows[k]}".rstrip() for t in test_sets for k, h, _ in columns]
    return text_table.markdown(header, rows, left_marker="---") + "\n"

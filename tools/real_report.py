"""Tables of ``tools/real_matrix.py`` results: mean ± sd over seeds per configuration, for the
``all`` and ``systems`` subsets, with the baselines and the noise ceiling/floor as rows.

    python tools/real_report.py RESULTS_DIR [RESULTS_DIR ...] [--md out.md]

A row is one configuration (config, preset, training examples, epochs, learning rate, batch)
and variant (single models, a spread calibration, the seeds' ensemble). Seeds of the same row
found in several result folders are pooled (e.g. a CPU and a GPU run of different rows).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = [
    ("mean_pearson", "Rp", 3),
    ("mean_spearman", "Rs", 3),
    ("outlier_ratio", "OR", 2),
    ("ci_pearson", "CI Rp", 2),
    ("ci_rmse", "CI RMSE", 2),
    ("nll", "NLL", 3),
    ("coverage_50", "cov50", 2),
    ("coverage_90", "cov90", 2),
]


def _label(job: dict) -> str:
    parts = [job.get("config", "?"), job.get("preset", "paper")]
    parts.append(job.get("train_on") or "ratings")
    parts.append(f"{job.get('epochs', 10)} ep")
    if job.get("lr") is not None:
        parts.append(f"lr {job['lr']:g}")
    parts.append(f"b{job.get('batch', 8)}")
    return ", ".join(str(p) for p in parts)


def load(folders: list[Path]) -> tuple[dict, dict]:
    """``rows[(test, label, variant)] = [(metrics.json dict, wall_s), ...]`` and baselines."""
    rows: dict = defaultdict(list)
    baselines: dict = {}
    members_of: dict = {}
    for folder in folders:
        jobs, walls = {}, {}
        for status in folder.glob("*/status.json"):
            state = json.loads(status.read_text())
            jobs[status.parent.name] = state["job"]
            walls[status.parent.name] = state.get("wall_s")
        for job_id, job in jobs.items():
            if job.get("kind") in ("ensemble", "collect"):
                members_of[job_id] = [jobs[m] for m in job["members"] if m in jobs]
        for metrics in folder.glob("*/*/metrics.json"):
            job_id, variant = metrics.parent.parent.name, metrics.parent.name
            job = jobs.get(job_id)
            if job is None:
                continue
            data = json.loads(metrics.read_text())
            wall = json.loads((metrics.parent / "time.json").read_text()).get("wall_s")
            if job.get("kind") == "ensemble":
                member = members_of[job_id][0]
                test, label = member["test"], _label(member)
                variant = f"ensemble of {len(job['members'])}"
            elif job.get("kind") == "collect":
                member = members_of[job_id][0]
                test, label, variant = member["test"], _label(member), "single"
                # the folds trained as separate jobs: their time, not the pooling's
                fold_walls = [walls.get(m) for m in job["members"]]
                if fold_walls and None not in fold_walls:
                    wall = sum(fold_walls)
            elif job.get("kind") == "transfer":
                target = variant.split("-on-")[1]
                test, label = target, f"trained on {job['train']}: {_label(job)}"
                variant = "transfer"
            else:
                test, label = job["test"], _label(job)
                variant = "single" if "-cal-" not in variant else "cal " + variant.split("-cal-")[1]
            rows[(test, label, variant)].append((data["test_sets"], wall))
            if data.get("baselines") and job.get("kind") != "transfer":
                baselines.setdefault(test, data["baselines"])
    return rows, baselines


def _cell(values: list[float], digits: int) -> str:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"


def render(rows: dict, baselines: dict) -> str:
    out = []
    tests = sorted({t for t, _, _ in rows})
    for test in tests:
        sets = sorted({s for (t, _, _), runs in rows.items() if t == test for r, _ in runs
                       for s in r if s.split(":")[0].startswith(test[:5])})  # fmt: skip
        for name in sets:
            subset = name.partition(":")[2] or "all"
            out.append(f"\n### {test}, {subset} ({name})\n")
            head = ["row", "variant", "n"] + [h for _, h, _ in COLUMNS] + ["wall s (per seed)"]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
            for (t, label, variant), runs in sorted(rows.items()):
                if t != test:
                    continue
                res = [r[name] for r, _ in runs if name in r]
                if not res:
                    continue
                cells = [_cell([r.get(k) for r in res], d) for k, _, d in COLUMNS]
                walls = [w for _, w in runs if w is not None]
                out.append(
                    f"| {label} | {variant} | {len(res)} | " + " | ".join(cells)
                    + f" | {np.mean(walls):.0f} |" if walls else " | n/a |"
                )  # fmt: skip
            for b, vals in (baselines.get(test, {}).get(name) or {}).items():
                cells = [_cell([vals.get(k)], d) for k, _, d in COLUMNS]
                out.append(f"| *{b}* | baseline | | " + " | ".join(cells) + " | |")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="results folders of tools/real_matrix.py")
    p.add_argument("--md", help="write the tables to this Markdown file")
    a = p.parse_args()
    rows, baselines = load([Path(f) for f in a.folders])
    text = render(rows, baselines)
    print(text)
    if a.md:
        Path(a.md).write_text(text)


if __name__ == "__main__":
    main()

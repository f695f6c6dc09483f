"""Objective peers on the real listening tests, in the columns of docs/results-real.md.

Two steps, because ViSQOL runs in its own environment (visqol-python pins its own numpy):

    # 1. ViSQOL MOS-LQO of every stimulus of a manifest (run with visqol-python installed)
    python tools/real_peers.py visqol real-tests/cvssp.csv --mode audio --out peers/cvssp-visqol.csv
    python tools/real_peers.py visqol real-tests/barysenka.csv --mode speech \
        --out peers/barysenka-visqol.csv
    # 2. their figures beside gml's (run with gml installed), for each test
    python tools/real_peers.py score real-tests/cvssp.csv peers/cvssp-visqol.csv \
        ../shared/data/real-tests/cvssp-singing-voice-separation/data/bss_eval_and_peass_clean.csv

A peer predicts a mean only (no spread, so no CI or NLL columns). Two rows each:

* ``no fit``: Pearson and Spearman of its raw score against the subjective means;
* ``fitted``: its score mapped to the 0-100 scale by a monotonic (logistic, else linear) fit on
  the training stimuli of each of the folds ``gml cv`` deals (same function, same seed), the
  test stimuli's mapped scores pooled over the folds: Pearson, Spearman and outlier ratio
  against the subjective means, comparable with gml's pooled cross-validated rows.

Both for ``all`` and ``systems`` (without hidden reference and anchors), where the peer scores
the stimuli.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEY = ["test", "item", "condition"]


def _stimuli(manifest: Path) -> pd.DataFrame:
    """One row per stimulus of a manifest: key, audio paths, role (raw CSV, no gml needed)."""
    d = pd.read_csv(manifest, keep_default_na=False, na_values=[""])
    base = manifest.resolve().parent
    for col in ("reference", "coded"):
        d[col] = [str(p if Path(p).is_absolute() else base / p) for p in d[col]]
    role = d["role"].fillna("") if "role" in d else ""
    d = d.assign(role=role)
    return (
        d.groupby(KEY, sort=True)
        .agg(reference=("reference", "first"), coded=("coded", "first"), role=("role", "first"))
        .reset_index()
    )


def visqol_scores(manifest: Path, mode: str) -> pd.DataFrame:
    """ViSQOL v3 MOS-LQO of each stimulus; audio mode at 48 kHz, speech mode at 16 kHz (both
    signals are resampled when their rate differs; stereo is averaged to mono, as ViSQOL does).

    Shape:
        → one row per stimulus: ``test, item, condition, visqol``.
    """
    import tempfile
    from math import gcd

    import soundfile as sf
    from scipy.signal import resample_poly
    from visqol import VisqolApi

    rate = 48000 if mode == "audio" else 16000
    api = VisqolApi()
    api.create(mode=mode)
    stim = _stimuli(manifest)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        cache: dict[str, str] = {}

        def at_rate(path: str) -> str:
            if path in cache:
                return cache[path]
            x, sr = sf.read(path, dtype="float64", always_2d=True)
            x = x.mean(axis=1)
            if sr != rate:
                g = gcd(sr, rate)
                x = resample_poly(x, rate // g, sr // g)
            cache[path] = str(Path(tmp) / f"{len(cache)}.wav")
            sf.write(cache[path], x, rate, subtype="FLOAT")
            return cache[path]

        for i, row in enumerate(stim.itertuples(index=False)):
            res = api.measure(at_rate(row.reference), at_rate(row.coded))
            moslqo = res.moslqo if hasattr(res, "moslqo") else res["moslqo"]
            out.append({"test": row.test, "item": row.item, "condition": row.condition,
                        "visqol": float(moslqo)})  # fmt: skip
            print(f"\r{i + 1}/{len(stim)} stimuli", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return pd.DataFrame(out)


def bss_peass(path: Path, test: str) -> pd.DataFrame:
    """The published BSS Eval / PEASS scores of the CVSSP quality experiment, one column per
    metric (APS, TPS, SAR, ISR), keyed like the manifest's stimuli."""
    d = pd.read_csv(path)
    d = d[d["experiment"] == "quality"]
    wide = d.pivot_table(index=["page", "sound"], columns="metric", values="score").reset_index()
    wide = wide.rename(columns={"page": "item", "sound": "condition"})
    wide.insert(0, "test", test)
    return wide


def _logistic(x, a, b, c, d):
    with np.errstate(over="ignore"):  # saturates to a or b far from c
        return a + (b - a) / (1.0 + np.exp(-(x - c) / d))


def fit_mapping(x: np.ndarray, y: np.ndarray):
    """A monotonic map from peer score to the 0-100 scale fitted on training stimuli: a
    4-parameter logistic (P.1401's usual choice), else a straight line when it does not fit.

    Shape:
        x, y: ``[n]`` training peer scores and subjective means → a vectorised callable.
    """
    from scipy.optimize import curve_fit

    slope, icpt = np.polyfit(x, y, 1)
    sign = 1.0 if slope >= 0 else -1.0
    span = max(float(np.std(x)), 1e-6)
    p0 = [y.min(), y.max(), float(np.median(x)), sign * span] if sign > 0 else [
        y.max(), y.min(), float(np.median(x)), span]  # fmt: skip
    import warnings

    try:
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore")  # a poor fit falls back to the line below
            p, _ = curve_fit(_logistic, x, y, p0=p0, maxfev=20000)
        if np.all(np.isfinite(p)):
            return lambda v: _logistic(np.asarray(v, dtype=float), *p)
    except (RuntimeError, ValueError):
        pass
    return lambda v: slope * np.asarray(v, dtype=float) + icpt


def score(manifest: Path, peers: pd.DataFrame, folds: int = 4, seed: int = 0) -> pd.DataFrame:
    """Figures of each peer column of ``peers`` on the manifest's stimuli, for ``all`` and
    ``systems``; the fitted rows use the folds ``gml cv --folds`` deals with ``seed``."""
    import torch
    from scipy import stats as sps

    from gml.data.datamodule import assign_folds
    from gml.data.manifest import Manifest, subset_masks
    from gml.metrics.functional import outlier_ratio

    stim = Manifest.read(manifest, check_audio=False).stimuli()
    keys = stim[["test", "item"]].drop_duplicates().reset_index(drop=True)
    keys["fold"] = assign_folds(keys, folds, seed)
    stim = stim.merge(keys, on=["test", "item"]).merge(peers, on=KEY, how="left")
    rows = []
    for col in [c for c in peers.columns if c not in KEY]:
        seen = set()
        masks = subset_masks(stim["role"] if "role" in stim else None)
        for subset, mask in reversed(masks.items()):
            s = stim[mask & stim[col].notna().to_numpy()]
            if len(s) < 3 or len(s) in seen:  # BSS Eval scores the systems only: all = systems
                continue
            seen.add(len(s))
            x, y = s[col].to_numpy(float), s["mean"].to_numpy(float)
            rows.append({"peer": col, "fit": "no fit", "subset": subset, "stimuli": len(s),
                         "pearson": sps.pearsonr(x, y)[0], "spearman": sps.spearmanr(x, y)[0],
                         "outlier_ratio": np.nan})  # fmt: skip
            mapped = np.full(len(s), np.nan)
            for k in range(folds):
                test, train = s["fold"].to_numpy() == k, s["fold"].to_numpy() != k
                if test.any() and train.sum() >= 4:
                    mapped[test] = fit_mapping(x[train], y[train])(x[test])
            ok = np.isfinite(mapped)
            ci = s["ci95"].to_numpy(float)
            orr = outlier_ratio(torch.tensor(mapped[ok]), torch.tensor(y[ok]), torch.tensor(ci[ok]))
            rows.append({"peer": col, "fit": "fitted on training folds", "subset": subset,
                         "stimuli": int(ok.sum()), "pearson": sps.pearsonr(mapped[ok], y[ok])[0],
                         "spearman": sps.spearmanr(mapped[ok], y[ok])[0],
                         "outlier_ratio": float(orr)})  # fmt: skip
    order = {"all": 0, "systems": 1}
    return pd.DataFrame(rows).sort_values(
        ["peer", "subset", "fit"],
        key=lambda c: c.map(order) if c.name == "subset" else c,
        kind="stable",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("visqol", help="ViSQOL MOS-LQO of every stimulus of a manifest")
    v.add_argument("manifest", type=Path)
    v.add_argument("--mode", choices=("audio", "speech"), default="audio")
    v.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score", help="peer figures on a manifest's stimuli (pooled folds)")
    s.add_argument("manifest", type=Path)
    s.add_argument("peers", type=Path, nargs="+",
                   help="ViSQOL CSV(s) from 'visqol', or the CVSSP BSS Eval/PEASS CSV")  # fmt: skip
    s.add_argument("--folds", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.cmd == "visqol":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        visqol_scores(args.manifest, args.mode).to_csv(args.out, index=False)
        print(f"wrote {args.out}")
        return
    test = str(pd.read_csv(args.manifest, usecols=["test"], nrows=1)["test"].iloc[0])
    table = None
    for path in args.peers:
        cols = pd.read_csv(path, nrows=1).columns
        frame = bss_peass(path, test) if "metric" in cols else pd.read_csv(path)
        table = frame if table is None else table.merge(frame, on=KEY, how="outer")
    out = score(args.manifest, table, args.folds, args.seed)
    with pd.option_context("display.width", 140, "display.precision", 3):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()

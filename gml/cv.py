"""k-fold cross-validation with pooled, per-test-set metrics (the library behind ``gml cv``).

Two schedules:

* ``cv`` (default): one model per fold. Fold k's items are held out; the rest are split 80/20
  into train/val; the model that never saw an item predicts it. Folds run in sequence, or as
  separate jobs (``--fold K``) whose outputs ``--collect`` merges.
* ``paper``: the paper's own schedule: ONE model trained ``--epochs-per-fold`` epochs on each
  of the k train/val partitions in turn (fold k validates), 50 epochs in all for 5 × 10. No
  item is held out from training by this schedule: like the paper, evaluate on listening
  tests kept out of training (rows with ``split = test`` in the manifest are never trained on
  and are tested at the end).

Outputs (``out``; ``gml cv``'s default ``runs/cv/<config name>``): ``fold<k>/`` runs (checkpoints, logs,
``test-best/metrics.json`` and ``predictions.csv``) and ``cv/metrics.json`` /
``cv/predictions.csv`` with the pooled figures, in the same format as ``gml test``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gml import baselines, plots, report, train
from gml.calibration import calibrate
from gml.checkpoint_path import check_resume_folder
from gml.data.manifest import Manifest
from gml.errors import GMLError
from gml.evaluation import evaluate
from gml.stats import STIMULUS_KEY

__all__ = [
    "CVSettings",
    "check_folds",
    "collect",
    "collect_all",
    "cross_validate",
    "paper_schedule",
    "print_fold",
]

KEY = list(STIMULUS_KEY)


#: A configuration: a shipped name, a YAML file, or several stacked (see :func:`gml.train.fit`).
Config = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class CVSettings:
    """How to cross-validate one configuration.

    Attributes:
        config: What :func:`gml.train.fit` trains (a name, a file, files stacked in order).
        overrides: Settings on top of it, by dotted key (``{"trainer.max_epochs": 5}``).
        folds: Number of folds (2 or more).
        out: The output folder.
        name: The model's name in tables.
        restart: Retrain folds that already finished (else they are kept, and an interrupted
            one continues from its ``last.ckpt``).
        seeds: Models per fold (``seed_everything`` 0..K-1), tested as one ensemble.
        calibrate: Also calibrate each fold's spread (``"nll"`` or ``"ci"``) and pool the
            calibrated models' results into ``cv-calibrated/``.
        epochs_per_fold: The paper schedule's epochs on each partition.
    """

    config: Config
    out: Path
    name: str
    overrides: dict[str, Any] | None = None
    folds: int = 5
    restart: bool = False
    seeds: int = 1
    calibrate: str | None = None
    epochs_per_fold: int = 10

    def check(self, schedule: str = "cv") -> None:
        """Refuse settings that cannot go together.

        Raises:
            GMLError: fewer than 2 folds or 1 seed; seeds or calibration with the paper
                schedule.
        """
        if self.folds < 2:
            raise GMLError(f"cv: --folds {self.folds}; expected 2 or more")
        if self.seeds < 1:
            raise GMLError(f"cv: --seeds {self.seeds}; expected 1 or more")
        if self.calibrate and (self.seeds > 1 or schedule == "paper"):
            raise GMLError(
                "cv: --calibrate is for one model per fold (no --seeds, no paper schedule)"
            )
        if self.seeds > 1 and schedule == "paper":
            raise GMLError("cv: --seeds is for the per-fold schedule, not --schedule paper")

    def fit(self, **more: Any) -> train.FitResult:
        """:func:`gml.train.fit` of this configuration with its overrides and ``more``."""
        return train.fit(self.config, **{**(self.overrides or {}), **more})


def cross_validate(cv: CVSettings, only: Sequence[int] | None = None) -> dict | None:
    """One model per fold: train and test each fold (``only``: just these folds, e.g. one job
    of several), then pool the held-out predictions of all folds (and, with ``cv.calibrate``,
    the calibrated models' ones).

    Returns:
        The pooled results per test set (as :func:`collect`), or None when only some folds ran
        (each fold's table is printed; :func:`collect` pools them once all have run).

    Raises:
        GMLError: see :func:`check_folds`, or a fold number out of range.
        Interrupted: a signal stopped training; running it again continues.
    """
    cv.check()
    folds = list(only) if only else list(range(cv.folds))
    bad = [k for k in folds if not 0 <= k < cv.folds]
    if bad:
        raise GMLError(f"cv: --fold {bad[0]}; expected 0 to {cv.folds - 1}")
    check_folds(cv)
    for k in folds:
        run_fold(cv, k)
    if only:
        for k in folds:
            print_fold(cv.out, k)
        done = [k for k in range(cv.folds) if _fold_done(cv.out, k)]
        print(
            f"gml cv: folds finished {done} of {cv.folds}; the pooled table of all folds comes "
            f"from: gml cv --collect --out {cv.out} --folds {cv.folds}"
        )
        return None
    return collect_all(cv)


def collect_all(cv: CVSettings) -> dict:
    """Pool every fold (and, with ``cv.calibrate``, calibrate and test each fold's best
    checkpoint and pool those too). Returns the uncalibrated pooled results."""
    results = collect(cv.out, cv.folds, cv.name)
    if cv.calibrate:
        for k in range(cv.folds):
            calibrate_fold(cv.out, k, cv.calibrate)
        collect(cv.out, cv.folds, f"{cv.name} (calibrated by {cv.calibrate})", "calibrated")
    return results


def print_fold(out: Path, k: int, variant: str = "") -> None:
    """Print fold ``k``'s per-test-set table (its held-out stimuli), as ``gml test`` does,
    and where its files are."""
    d = _fold_dir(out, k) / _test_dir(variant)
    results = json.loads((d / "metrics.json").read_text())["test_sets"]
    results = {
        t: {m: (np.nan if v is None else v) for m, v in r.items()} for t, r in results.items()
    }
    print(f"\nfold {k}: its held-out stimuli")
    print(report.format_table(results, extra={"const NLL": "constant_nll"}))
    print(f"gml cv: fold {k}'s metrics.json, predictions.csv and plots are in {d}", flush=True)


def check_folds(cv: CVSettings) -> None:
    """Fail before any training when cross-validation cannot hold every item out once.

    Raises:
        GMLError: the manifest has a ``split`` column (it would fix the partition in every
            fold), or a listening test has fewer items than folds (some folds would hold none
            of it out).
    """
    _, datamodule = train.configure(cv.config, **(cv.overrides or {}))
    path = datamodule.manifest_path()
    manifest = Manifest.read(path, check_audio=False)
    if manifest.has_split:
        raise GMLError(
            f"{path}: has a 'split' column, which fixes the partition in every fold; drop it "
            "for cross-validation, or use --schedule paper (its split = test rows are kept out)"
        )
    items = manifest.ratings.groupby("test")["item"].nunique()
    few = items[items < cv.folds]
    if len(few):
        raise GMLError(
            f"{path}: listening test {few.index[0]!r} has {few.iloc[0]} items, fewer than "
            f"--folds {cv.folds}; some folds would hold none of it out (use --folds {few.iloc[0]})"
        )


def _fold_dir(out: Path, k: int) -> Path:
    return out / f"fold{k}"


def _fold_done(out: Path, k: int, variant: str = "") -> bool:
    d = _fold_dir(out, k) / _test_dir(variant)
    return (d / "predictions.csv").is_file() and (d / "metrics.json").is_file()


def _logger(out: Path, version: str) -> dict[str, Any]:
    """A CSV logger writing into ``out/version`` (the run folder of one model)."""
    return {
        "trainer.logger": {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(out), "name": "", "version": version},
        }
    }


def run_fold(cv: CVSettings, k: int) -> None:
    """Train fold ``k`` (held out for testing) and test its best checkpoint (with ``seeds``
    K, the ensemble of its K seeds' best checkpoints). A fold whose training was interrupted
    continues from its ``last.ckpt``; ``restart`` trains it again from scratch."""
    out = cv.out
    fold_dir = _fold_dir(out, k)
    if _fold_done(out, k) and not cv.restart:
        print(f"gml cv: fold {k} already finished ({fold_dir}); --restart retrains it", flush=True)
        return
    if fold_dir.exists() and cv.restart:
        shutil.rmtree(fold_dir)
    print(f"gml cv: fold {k + 1}/{cv.folds} → {fold_dir}", flush=True)
    if cv.seeds == 1:
        best = _train(cv, k, f"fold{k}", {})
        # its table is printed when the command ends (print_fold), or pooled by collect
        evaluate(best)
        return
    # seeds K: K models per fold (seeds 0..K-1 of seed_everything), tested as one ensemble
    members = [_train(cv, k, f"fold{k}/seed{s}", {"seed_everything": s}) for s in range(cv.seeds)]
    evaluation = evaluate([str(m) for m in members], out_dir=fold_dir / "test-best")
    print(f"ensemble of {len(members)} checkpoints")
    print(report.format_evaluation(evaluation), flush=True)


def _resumable(run_dir: Path, restart: bool) -> bool:
    try:
        check_resume_folder(str(run_dir))
    except GMLError:
        return False
    return not restart


def _train(cv: CVSettings, k: int, version: str, extra: dict[str, Any]) -> Path:
    """Train one model of fold ``k`` into ``out/version`` (continuing it from its
    ``last.ckpt`` when an earlier run was interrupted); returns its ``best.ckpt``."""
    run_dir = cv.out / version
    if _resumable(run_dir, cv.restart):
        # its config.yaml holds the overrides already (given again, `+=` would add twice)
        print(f"gml cv: continuing {run_dir} from its last.ckpt", flush=True)
        result = train.fit(resume=run_dir)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # trained too briefly to have a last.ckpt: from scratch
        result = cv.fit(
            **extra,
            **{"data.num_folds": cv.folds, "data.fold": k, "data.fold_role": "test"},
            **_logger(cv.out, version),
        )
    best = result.best if result.best is not None else run_dir / "last.ckpt"
    best_link = run_dir / "best.ckpt"
    if best.resolve() != best_link.resolve() and best.is_file():
        shutil.copyfile(best, best_link)
    return best_link


def _test_dir(variant: str) -> str:
    return f"test-best-{variant}" if variant else "test-best"


def calibrate_fold(out: Path, k: int, method: str) -> None:
    """Calibrate fold ``k``'s best checkpoint and test the calibrated one (skipped when done)."""
    if _fold_done(out, k, "calibrated"):
        return
    fold_dir = _fold_dir(out, k)
    path, fit = calibrate(fold_dir / "best.ckpt", method, fold_dir / "best-calibrated.ckpt")
    print(
        f"gml cv: fold {k} spread factor {fit['factor']:.3f} (by {method}, on "
        f"{fit['n_items']} validation items, {fit['n_stimuli']} stimuli)",
        flush=True,
    )
    evaluate(path, out_dir=fold_dir / _test_dir("calibrated"))


def collect(out: Path, num_folds: int, name: str, variant: str = "") -> dict:
    """Merge every fold's held-out predictions and compute pooled metrics per test set
    (``variant="calibrated"``: the calibrated models' results, into ``cv-calibrated/``)."""
    frames, pits, bases, per_fold = [], [], [], {}
    missing = [k for k in range(num_folds) if not _fold_done(out, k, variant)]
    if missing:
        raise GMLError(
            f"{out}: fold(s) {missing} not finished; run them with 'gml cv --config ... --fold K --out {out}'"
        )

    def read(path: Path) -> pd.DataFrame:
        return pd.read_csv(path, dtype={c: str for c in KEY}, keep_default_na=False, na_values=[""])

    for k in range(num_folds):
        d = _fold_dir(out, k) / _test_dir(variant)
        f = read(d / "predictions.csv")
        f.insert(0, "cv_fold", k)
        frames.append(f)
        if (d / "pit.csv").is_file():  # folds run by an older gml have none
            pits.append(read(d / "pit.csv"))
        if (d / "baselines.csv").is_file() and (d / "baselines.csv").stat().st_size > 1:
            bases.append(read(d / "baselines.csv"))
        per_fold[k] = json.loads((d / "metrics.json").read_text())["test_sets"]
    allp = pd.concat(frames, ignore_index=True)
    if "role" in allp:
        allp["role"] = allp["role"].fillna("")
    pit = pd.concat(pits, ignore_index=True) if len(pits) == len(frames) else None
    dup = allp.duplicated(subset=KEY)
    if dup.any():
        row = allp.loc[dup].iloc[0]
        raise GMLError(
            f"{out}: stimulus {row['test']}/{row['item']}/{row['condition']} was held out by two folds; were the folds run with different settings?"
        )
    results = baselines.subset_results(allp, pit)
    for row, res in results.items():
        test, _, subset = row.partition(":")
        in_set = allp["test"].eq(test)
        if subset:
            in_set &= allp["role"].eq("")
        ratings = {
            k: allp.loc[in_set & allp["cv_fold"].eq(k), "n_listeners"].sum()
            for k in range(num_folds)
        }
        total = sum(ratings.values())
        # per-score NLLs pooled when every fold wrote them; else the folds' means, weighted
        keys = ["constant_nll"] if "nll" in res else ["nll", "constant_nll"]
        for key in keys:
            vals = [(per_fold[k].get(row, {}).get(key), r) for k, r in ratings.items() if r]
            res[key] = (
                float(sum(v * r for v, r in vals) / total)
                if vals and all(v is not None for v, _ in vals)
                else float("nan")
            )
    pooled_baselines = (
        baselines.baseline_results(pd.concat(bases, ignore_index=True), allp, pit)
        if pit is not None and len(bases) == len(frames)
        else {}
    )
    folds_table = {
        f"fold{k}": {
            t: {m: v for m, v in r.items() if v is not None} for t, r in per_fold[k].items()
        }
        for k in range(num_folds)
    }
    cv_dir = out / (f"cv-{variant}" if variant else "cv")
    report.write_json(
        cv_dir / "metrics.json",
        {
            "name": name,
            "schedule": "cv",
            "folds": num_folds,
            "test_sets": results,
            "baselines": pooled_baselines,
            "per_fold": folds_table,
        },
    )
    report.atomic_write_text(
        cv_dir / "predictions.csv", allp.to_csv(index=False, float_format="%.4f")
    )
    if pit is not None:
        report.atomic_write_text(cv_dir / "pit.csv", pit.to_csv(index=False, float_format="%.5f"))
    saved = plots.save_test_set_plots(allp, pit, cv_dir)
    print(f"\n{name}: {num_folds}-fold cross-validation, pooled held-out predictions")
    print(report.format_table(results, extra=report.SCORE_COLUMNS))
    if pooled_baselines:
        print("\n" + report.BASELINES_TITLE)
        print(report.format_baselines(pooled_baselines))
    print("\nper fold:")
    rows = {
        f"{t} fold{k}": {m: (np.nan if v is None else v) for m, v in r.items()}
        for k in range(num_folds)
        for t, r in per_fold[k].items()
    }
    print(report.format_table(rows))
    n_plots = sum(len(v) for v in saved.values())
    print(
        f"gml cv: wrote {cv_dir / 'metrics.json'}, predictions.csv and {n_plots} plots in "
        f"{cv_dir / 'plots'}",
        flush=True,
    )
    return results


def paper_schedule(cv: CVSettings) -> Path:
    """One model, ``epochs_per_fold`` epochs on each train/val partition in turn; tested at the
    end on the manifest's held-out listening tests (``split = test`` rows), if it has any.

    Returns:
        The final checkpoint (``out/final.ckpt``).
    """
    cv.check("paper")
    prev = None
    result = None
    for k in range(cv.folds):
        stage = cv.out / f"stage{k}"
        epochs = f"{k * cv.epochs_per_fold}-{(k + 1) * cv.epochs_per_fold}"
        print(f"gml cv (paper schedule): partition {k + 1}/{cv.folds}, epochs {epochs}", flush=True)
        if _resumable(stage, cv.restart):  # an interrupted (or finished) stage continues
            result = train.fit(resume=stage)
        else:
            if stage.exists():
                shutil.rmtree(stage)
            more = {
                "data.num_folds": cv.folds,
                "data.fold": k,
                "data.fold_role": "val",
                "trainer.max_epochs": (k + 1) * cv.epochs_per_fold,
                **_logger(cv.out, f"stage{k}"),
            }
            if prev is not None:
                more["ckpt_path"] = str(prev)
            result = cv.fit(**more)
        prev = stage / "last.ckpt"
    final = cv.out / "final.ckpt"
    shutil.copyfile(prev, final)
    print(f"gml cv (paper schedule): final model {final}", flush=True)
    dm = result.datamodule
    if dm is not None and dm.partition is not None and (dm.partition == "test").any():
        print("\n" + report.format_evaluation(evaluate(final)), flush=True)
    else:
        print(
            "no held-out listening test in this manifest (no rows with split = test); "
            f"evaluate with: gml test --ckpt {final} --data.manifest <test manifest> --data.test_all true",
            file=sys.stderr,
        )
    return final

"""``gml cv``: k-fold cross-validation with pooled, per-test-set metrics.

Two schedules:

* ``cv`` (default): one model per fold. Fold k's items are held out; the rest are split 80/20
  into train/val; the model that never saw an item predicts it. Folds run in sequence, or as
  separate jobs (``--fold K``) whose outputs ``--collect`` merges.
* ``paper``: the paper's own schedule: ONE model trained ``--epochs-per-fold`` epochs on each
  of the k train/val partitions in turn (fold k validates), 50 epochs in all for 5 × 10. No
  item is held out from training by this schedule: like the paper, evaluate on listening
  tests kept out of training (rows with ``split = test`` in the manifest are never trained on
  and are tested at the end).

Outputs (``--out``, default ``runs/cv/<config name>``): ``fold<k>/`` runs (checkpoints, logs,
``test-best/metrics.json`` and ``predictions.csv``) and ``cv/metrics.json`` /
``cv/predictions.csv`` with the pooled figures, in the same format as ``gml test``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gml.errors import GMLError, Interrupted
from gml.stats import STIMULUS_KEY

KEY = list(STIMULUS_KEY)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gml cv",
        description="Cross-validate a configuration: one model per fold (or the paper's "
        "one-model schedule), pooled metrics per listening test. Any other option "
        "(--trainer.max_epochs 5, --model.head ...) is passed on to 'gml fit'.",
    )
    p.add_argument("--config", action="append", default=[], help="fit config YAML (repeatable)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--fold", type=int, action="append", help="run only this fold (repeatable)")
    p.add_argument("--collect", action="store_true", help="only merge finished folds")
    p.add_argument("--out", help="output folder (default runs/cv/<config name>)")
    p.add_argument("--name", help="model name for tables (default: the config's file name)")
    p.add_argument("--schedule", choices=("cv", "paper"), default="cv")
    p.add_argument("--epochs-per-fold", type=int, default=10, help="paper schedule only")
    p.add_argument("--restart", action="store_true", help="retrain folds that already finished")
    p.add_argument(
        "--calibrate",
        choices=("nll", "ci"),
        help="also calibrate each fold's spread on its validation stimuli (gml calibrate) and "
        "pool the calibrated models' results into cv-calibrated/",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="models per fold (seed_everything 0..K-1), tested as one ensemble (default 1)",
    )
    return p


def main(argv: list[str]) -> None:
    """Entry point of ``gml cv``."""
    args, overrides = build_parser().parse_known_args(argv)
    if not args.config and not (args.collect and args.out):
        raise GMLError("cv: --config is required (or --collect with --out)")
    if args.folds < 2:
        raise GMLError(f"cv: --folds {args.folds}; expected 2 or more")
    if args.seeds < 1:
        raise GMLError(f"cv: --seeds {args.seeds}; expected 1 or more")
    if args.calibrate and (args.seeds > 1 or args.schedule == "paper"):
        raise GMLError("cv: --calibrate is for one model per fold (no --seeds, no paper schedule)")
    if args.seeds > 1 and args.schedule == "paper":
        raise GMLError("cv: --seeds is for the per-fold schedule, not --schedule paper")
    name = args.name or (Path(args.config[-1]).stem if args.config else Path(args.out).name)
    out = Path(args.out or Path("runs") / "cv" / name).resolve()
    try:
        _run(args, overrides, out, name)
    except Interrupted as err:
        # the same command continues: finished folds are kept, an interrupted one resumes
        err.resume = continue_command(argv, out)
        raise


def continue_command(argv: list[str], out: Path) -> str:
    """The ``gml cv`` command that continues an interrupted one: the same arguments, with the
    output folder named and without ``--restart`` (which would train finished folds again)."""
    import shlex

    args = [a for a in argv if a != "--restart"]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return "gml cv " + shlex.join(args)


def _run(args, overrides: list[str], out: Path, name: str) -> None:
    if args.schedule == "paper":
        paper_schedule(args, overrides, out)
        return
    folds = args.fold if args.fold else list(range(args.folds))
    bad = [k for k in folds if not 0 <= k < args.folds]
    if bad:
        raise GMLError(f"cv: --fold {bad[0]}; expected 0 to {args.folds - 1}")
    if not args.collect:
        check_folds(args, overrides)
        for k in folds:
            run_fold(args, overrides, out, k)
    if args.collect or not args.fold:
        collect(out, args.folds, name)
        if args.calibrate:
            for k in range(args.folds):
                calibrate_fold(out, k, args.calibrate)
            collect(out, args.folds, f"{name} (calibrated by {args.calibrate})", "calibrated")
    else:
        for k in folds:
            print_fold(out, k)
        done = [k for k in range(args.folds) if _fold_done(out, k)]
        print(
            f"gml cv: folds finished {done} of {args.folds}; the pooled table of all folds comes "
            f"from: gml cv --collect --out {out} --folds {args.folds}"
        )


def print_fold(out: Path, k: int, variant: str = "") -> None:
    """Print fold ``k``'s per-test-set table (its held-out stimuli), as ``gml test`` does,
    and where its files are."""
    import json

    from gml import report

    d = _fold_dir(out, k) / _test_dir(variant)
    results = json.loads((d / "metrics.json").read_text())["test_sets"]
    results = {
        t: {m: (np.nan if v is None else v) for m, v in r.items()} for t, r in results.items()
    }
    print(f"\nfold {k}: its held-out stimuli")
    print(report.format_table(results, extra={"const NLL": "constant_nll"}))
    print(f"gml cv: fold {k}'s metrics.json, predictions.csv and plots are in {d}", flush=True)


def check_folds(args, overrides: list[str]) -> None:
    """Fail before any training when cross-validation cannot hold every item out once.

    Raises:
        GMLError: the manifest has a ``split`` column (it would fix the partition in every
            fold), or a listening test has fewer items than folds (some folds would hold none
            of it out).
    """
    from gml.cli import GMLCLI
    from gml.data.manifest import Manifest

    cli = GMLCLI(args=[*_config_args(args), *overrides], run=False)
    path = cli.datamodule.manifest_path()
    manifest = Manifest.read(path, check_audio=False)
    if manifest.has_split:
        raise GMLError(
            f"{path}: has a 'split' column, which fixes the partition in every fold; drop it "
            "for cross-validation, or use --schedule paper (its split = test rows are kept out)"
        )
    items = manifest.ratings.groupby("test")["item"].nunique()
    few = items[items < args.folds]
    if len(few):
        raise GMLError(
            f"{path}: listening test {few.index[0]!r} has {few.iloc[0]} items, fewer than "
            f"--folds {args.folds}; some folds would hold none of it out (use --folds {few.iloc[0]})"
        )


def _config_args(args) -> list[str]:
    return [a for c in args.config for a in ("--config", c)]


def _fold_dir(out: Path, k: int) -> Path:
    return out / f"fold{k}"


def _fold_done(out: Path, k: int, variant: str = "") -> bool:
    d = _fold_dir(out, k) / _test_dir(variant)
    return (d / "predictions.csv").is_file() and (d / "metrics.json").is_file()


def _logger_args(out: Path, version: str) -> list[str]:
    return [
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.logger.init_args.name", "",
        "--trainer.logger.init_args.version", version,
    ]  # fmt: skip


def run_fold(args, overrides: list[str], out: Path, k: int) -> None:
    """Train fold ``k`` (held out for testing) and test its best checkpoint (with ``--seeds K``
    the ensemble of its K seeds' best checkpoints). A fold whose training was interrupted
    continues from its ``last.ckpt``; ``--restart`` trains it again from scratch."""
    from gml.cli import run

    fold_dir = _fold_dir(out, k)
    if _fold_done(out, k) and not args.restart:
        print(f"gml cv: fold {k} already finished ({fold_dir}); --restart retrains it", flush=True)
        return
    if fold_dir.exists() and args.restart:
        shutil.rmtree(fold_dir)
    print(f"gml cv: fold {k + 1}/{args.folds} → {fold_dir}", flush=True)
    if args.seeds == 1:
        best = _train(args, overrides, out, k, f"fold{k}", [])
        # its table is printed when the command ends (print_fold), or pooled by collect
        run(["test", "--ckpt", str(best), "--trainer.enable_progress_bar", "false"], False)
        return
    # --seeds K: K models per fold (seeds 0..K-1 of seed_everything), tested as one ensemble
    members = [
        _train(args, overrides, out, k, f"fold{k}/seed{s}", ["--seed_everything", str(s)])
        for s in range(args.seeds)
    ]
    from gml.cli.test_ensemble import main as test_ensemble

    test_ensemble(
        [a for m in members for a in ("--ckpt", str(m))]
        + ["--out", str(fold_dir / "test-best"), "--data.progress", "false"]
    )


def _train(args, overrides: list[str], out: Path, k: int, version: str, extra: list[str]) -> Path:
    """Train one model of fold ``k`` into ``out/version`` (continuing it from its
    ``last.ckpt`` when an earlier run was interrupted); returns its ``best.ckpt``."""
    from gml.cli import run
    from gml.cli.precheck import check_resume_folder

    run_dir = out / version
    try:
        check_resume_folder(str(run_dir))
        resumable = not args.restart
    except GMLError:
        resumable = False
    if resumable:
        # its config.yaml holds the overrides already (given again, `+=` would add twice)
        print(f"gml cv: continuing {run_dir} from its last.ckpt", flush=True)
        cli = run(["fit", "--resume", str(run_dir)])
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # trained too briefly to have a last.ckpt: from scratch
        cli = run(
            ["fit", *_config_args(args), *overrides, *extra,
             "--data.num_folds", str(args.folds), "--data.fold", str(k),
             "--data.fold_role", "test", *_logger_args(out, version)]
        )  # fmt: skip
    ckpt = cli.trainer.checkpoint_callback
    best = (
        Path(ckpt.best_model_path)
        if ckpt is not None and ckpt.best_model_path
        else run_dir / "last.ckpt"
    )
    best_link = run_dir / "best.ckpt"
    if best.resolve() != best_link.resolve() and best.is_file():
        shutil.copyfile(best, best_link)
    return best_link


def _test_dir(variant: str) -> str:
    return f"test-best-{variant}" if variant else "test-best"


def calibrate_fold(out: Path, k: int, method: str) -> None:
    """Calibrate fold ``k``'s best checkpoint and test the calibrated one (skipped when done)."""
    from gml.calibration import calibrate
    from gml.evaluation import evaluate

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
    from gml import baselines, report

    frames, pits, bases, per_fold = [], [], [], {}
    missing = [k for k in range(num_folds) if not _fold_done(out, k, variant)]
    if missing:
        raise GMLError(
            f"{out}: fold(s) {missing} not finished; run them with 'gml cv --config ... --fold K --out {out}'"
        )
    import json

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
    from gml import plots

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


def paper_schedule(args, overrides: list[str], out: Path) -> None:
    """One model, ``epochs_per_fold`` epochs on each train/val partition in turn."""
    from gml.cli import run
    from gml.cli.precheck import check_resume_folder

    prev = None
    cli = None
    for k in range(args.folds):
        stage = out / f"stage{k}"
        print(
            f"gml cv (paper schedule): partition {k + 1}/{args.folds}, epochs {k * args.epochs_per_fold}-{(k + 1) * args.epochs_per_fold}",
            flush=True,
        )
        try:
            check_resume_folder(str(stage))
            resumable = not args.restart
        except GMLError:
            resumable = False
        if resumable:  # an interrupted (or finished) stage continues from its last.ckpt
            cli = run(["fit", "--resume", str(stage)])
        else:
            if stage.exists():
                shutil.rmtree(stage)
            argv = ["fit", *_config_args(args), *overrides,
                    "--data.num_folds", str(args.folds), "--data.fold", str(k), "--data.fold_role", "val",
                    "--trainer.max_epochs", str((k + 1) * args.epochs_per_fold),
                    *_logger_args(out, f"stage{k}")]  # fmt: skip
            if prev is not None:
                argv += ["--ckpt_path", str(prev)]
            cli = run(argv)
        prev = stage / "last.ckpt"
    final = out / "final.ckpt"
    shutil.copyfile(prev, final)
    print(f"gml cv (paper schedule): final model {final}", flush=True)
    dm = cli.datamodule
    if dm is not None and dm.partition is not None and (dm.partition == "test").any():
        run(["test", "--ckpt", str(final), "--trainer.enable_progress_bar", "false"])
    else:
        print(
            "no held-out listening test in this manifest (no rows with split = test); "
            f"evaluate with: gml test --ckpt {final} --data.manifest <test manifest> --data.test_all true",
            file=sys.stderr,
        )

"""``gml cv`` (both schedules, --fold/--collect) and ``gml table``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gml.cli import main

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo.yaml")
BASE = [
    "--model.backbone.init_args.preset", "tiny", "--trainer.limit_train_batches", "2",
    "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
    "--data.progress", "false",
]  # fmt: skip
FAST = [*BASE, "--trainer.max_epochs", "1"]


@pytest.fixture(scope="module")
def cv_runs(tiny_demo, tmp_path_factory):
    """A GML and a non-GML 2-fold cross-validation on the tiny demo."""
    root = tmp_path_factory.mktemp("cv")
    main(
        [
            "cv",
            "--config",
            DEMO,
            "--folds",
            "2",
            "--out",
            str(root / "gml"),
            "--data.manifest",
            str(tiny_demo),
            *FAST,
        ]
    )
    main(
        ["cv", "--config", DEMO, "--folds", "2", "--out", str(root / "nongml"), "--name", "non-GML",
         "--data.manifest", str(tiny_demo), "--model.head", "gml.heads.PointHead", *FAST]
    )  # fmt: skip
    return root


@pytest.mark.slow
def test_cv_pools_every_stimulus_once(cv_runs, tiny_demo):
    preds = pd.read_csv(cv_runs / "gml" / "cv" / "predictions.csv")
    manifest = pd.read_csv(tiny_demo)
    n_stimuli = len(manifest.groupby(["test", "item", "condition"]))
    assert len(preds) == n_stimuli and not preds.duplicated(["test", "item", "condition"]).any()
    # each item is predicted by exactly one fold's model
    assert (preds.groupby(["test", "item"])["cv_fold"].nunique() == 1).all()
    assert set(preds["cv_fold"]) == {0, 1}


@pytest.mark.slow
def test_cv_pooled_metrics_match_scipy(cv_runs):
    m = json.loads((cv_runs / "gml" / "cv" / "metrics.json").read_text())
    preds = pd.read_csv(cv_runs / "gml" / "cv" / "predictions.csv")
    assert set(m["test_sets"]) == {
        "demo-music", "demo-music:systems", "demo-speech", "demo-speech:systems"
    }  # fmt: skip
    assert set(m["per_fold"]) == {"fold0", "fold1"}
    preds["role"] = preds["role"].fillna("")
    systems = preds[preds["role"] == ""].assign(test=lambda f: f["test"] + ":systems")
    assert set(preds["role"]) == {"", "hidden_reference", "low_anchor", "mid_anchor"}
    for test, g in pd.concat([preds, systems]).groupby("test"):
        res = m["test_sets"][test]
        np.testing.assert_allclose(
            res["mean_pearson"],
            sps.pearsonr(g["predicted_mean"], g["subjective_mean"])[0],
            atol=2e-3,
        )
        np.testing.assert_allclose(
            res["ci_rmse"],
            np.sqrt(np.mean((g["predicted_ci95"] - g["subjective_ci95"]) ** 2)),
            rtol=2e-3,
        )
        outl = np.mean(np.abs(g["predicted_mean"] - g["subjective_mean"]) > g["subjective_ci95"])
        np.testing.assert_allclose(res["outlier_ratio"], outl, atol=1e-6)
        # pooled NLL = listener-weighted mean of the folds' NLLs
        w = {k: f["n_listeners"].sum() for k, f in g.groupby("cv_fold")}
        folds = [m["per_fold"][f"fold{k}"][test]["nll"] for k in sorted(w)]
        np.testing.assert_allclose(
            res["nll"], np.average(folds, weights=[w[k] for k in sorted(w)]), rtol=1e-5
        )
        # the baselines of the same rows, pooled over the folds
        assert set(m["baselines"][test]) == {"condition oracle", "constant spread", "noise ceiling"}
        assert m["baselines"][test]["noise ceiling"]["n_stimuli"] == len(g)
    # pooled PIT of every held-out score, its coverage, and the plots per test set
    pit = pd.read_csv(cv_runs / "gml" / "cv" / "pit.csv")
    assert len(pit) == preds["n_listeners"].sum()
    for test, g in pit.groupby("test"):
        inside = (np.abs(g["pit"] - 0.5) <= 0.45).mean()
        np.testing.assert_allclose(m["test_sets"][test]["coverage_90"], inside, atol=1e-9)
        for kind in ("means", "cis", "calibration"):
            assert (cv_runs / "gml" / "cv" / "plots" / f"{test}-{kind}.png").is_file()


@pytest.mark.slow
def test_nongml_reports_na(cv_runs):
    m = json.loads((cv_runs / "nongml" / "cv" / "metrics.json").read_text())
    res = m["test_sets"]["demo-music"]
    assert res["ci_pearson"] is None and res["ci_rmse"] is None and res["nll"] is None
    assert res["mean_pearson"] is not None


@pytest.mark.slow
def test_separate_folds_then_collect(tiny_demo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Path("split-jobs")  # relative on purpose
    args = [
        "cv",
        "--config",
        DEMO,
        "--folds",
        "2",
        "--out",
        str(out),
        "--data.manifest",
        str(tiny_demo),
        *FAST,
    ]
    main([*args, "--fold", "1"])
    assert "folds finished [1]" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # collecting too early is one clear error
        main(["cv", "--collect", "--out", str(out), "--folds", "2"])
    assert "fold(s) [0] not finished" in capsys.readouterr().err
    main([*args, "--fold", "0"])
    main(["cv", "--collect", "--out", str(out), "--folds", "2"])
    assert (out / "cv" / "metrics.json").is_file()


@pytest.mark.slow
def test_table_marks_best_and_na(cv_runs, tmp_path, capsys):
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    main(
        [
            "table",
            "--runs",
            str(cv_runs / "gml"),
            str(cv_runs / "nongml"),
            "--names",
            "GML",
            "non-GML",
            "--md",
            str(md),
            "--csv",
            str(csv),
        ]
    )
    text = md.read_text()
    assert capsys.readouterr().out == text
    lines = text.splitlines()
    assert lines[0].startswith("| model | demo-music Rp mean ↑")
    assert lines[2].startswith("| GML |") and lines[3].startswith("| non-GML |")
    assert "n/a" in lines[3] and "**" in text
    # the baselines follow the runs, in italics, and are never the best
    assert [line.split(" |")[0] for line in lines[4:]] == [
        "| baseline: condition oracle", "| baseline: constant spread", "| baseline: noise ceiling"
    ]  # fmt: skip
    assert "*0." in lines[4] and "**" not in "".join(lines[4:])
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert "demo-music:systems Rp mean" in table.columns
    baseline_rows = table["model"].str.startswith("baseline: ")
    assert baseline_rows.sum() == 3 and not baseline_rows[:2].any()
    table = table[~baseline_rows]
    col = "demo-music Rp mean"
    starred = table[col].astype(str).str.endswith("*")
    assert starred.sum() >= 1
    vals = table[col].astype(str).str.rstrip("*").astype(float)
    assert vals[starred].max() == vals.max()
    # CI columns: the non-GML row is n/a and the GML row is therefore the best
    assert table.loc[1, "demo-music RMSE CI"] == "n/a" and str(
        table.loc[0, "demo-music RMSE CI"]
    ).endswith("*")


@pytest.mark.slow
def test_paper_schedule(split_manifest, tmp_path):
    out = tmp_path / "paper"
    main(["cv", "--config", DEMO, "--schedule", "paper", "--folds", "2", "--epochs-per-fold", "1", "--out", str(out),
          "--data.manifest", str(split_manifest), *BASE])  # fmt: skip
    assert (out / "final.ckpt").is_file()
    metrics = pd.read_csv(out / "stage1" / "metrics.csv")
    assert metrics["epoch"].max() == 1  # two stages of one epoch: epochs 0 and 1 of one model
    preds = pd.read_csv(out / "test-final" / "predictions.csv")
    assert set(preds["item"]) == {"item4", "item5"}  # the manifest's split = test rows


@pytest.mark.slow
def test_paper_schedule_from_python_in_one_call(split_manifest, tmp_path):
    from gml.cv import CVSettings, paper_schedule

    tiny = {
        "data.manifest": str(split_manifest),
        "data.progress": False,
        "model.backbone.init_args.preset": "tiny",
        "trainer": {"limit_train_batches": 2, "enable_progress_bar": False, "accelerator": "cpu"},
    }
    settings = CVSettings("demo", tmp_path / "paper", "demo", tiny, folds=2, epochs_per_fold=1)
    final = paper_schedule(settings)
    assert final == tmp_path / "paper" / "final.ckpt" and final.is_file()
    preds = pd.read_csv(tmp_path / "paper" / "test-final" / "predictions.csv")
    assert set(preds["item"]) == {"item4", "item5"}  # tested on the split = test rows


def test_cv_refuses_split_column_and_too_few_items(split_manifest, noise_manifest, capsys):
    with pytest.raises(SystemExit):
        main(
            ["cv", "--config", DEMO, "--folds", "2", "--data.manifest", str(split_manifest), *FAST]
        )
    assert "has a 'split' column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            ["cv", "--config", DEMO, "--folds", "7", "--data.manifest", str(noise_manifest), *FAST]
        )
    assert "has 6 items, fewer than --folds 7" in capsys.readouterr().err


@pytest.mark.slow
def test_cv_seeds_tests_each_fold_as_an_ensemble(tiny_demo, tmp_path, capsys):
    out = tmp_path / "ens"
    main(["cv", "--config", DEMO, "--folds", "2", "--seeds", "2", "--out", str(out),
          "--data.manifest", str(tiny_demo), *FAST])  # fmt: skip
    for k in (0, 1):
        metrics = json.loads((out / f"fold{k}" / "test-best" / "metrics.json").read_text())
        assert [Path(m).parent.name for m in metrics["members"]] == ["seed0", "seed1"]
    preds = pd.read_csv(out / "cv" / "predictions.csv")
    assert "predicted_model_std" in preds and (preds["predicted_model_std"] > 0).all()
    assert "ensemble of 2 checkpoints" in capsys.readouterr().out


@pytest.mark.slow
def test_cv_calibrate_pools_the_calibrated_folds(tiny_demo, tmp_path, capsys):
    out = tmp_path / "cal"
    main(["cv", "--config", DEMO, "--folds", "2", "--calibrate", "ci", "--out", str(out),
          "--data.manifest", str(tiny_demo), *FAST])  # fmt: skip
    plain = json.loads((out / "cv" / "metrics.json").read_text())
    cal = json.loads((out / "cv-calibrated" / "metrics.json").read_text())
    assert cal["name"].endswith("(calibrated by ci)") and set(cal["test_sets"]) == set(
        plain["test_sets"]
    )
    assert (out / "fold1" / "best-calibrated.ckpt").is_file()
    a = pd.read_csv(out / "cv" / "predictions.csv")
    b = pd.read_csv(out / "cv-calibrated" / "predictions.csv")
    pd.testing.assert_series_equal(a["predicted_mean"], b["predicted_mean"], atol=1e-3)
    assert "spread factor" in capsys.readouterr().out


def test_table_coverage_columns_mark_the_closest_to_nominal():
    from gml.table import COVERAGE_COLUMNS, render

    runs = [
        ("a", {"t": {"coverage_50": 0.40, "coverage_90": 0.95}}),
        ("b", {"t": {"coverage_50": 0.55, "coverage_90": 0.80}}),
    ]
    md = render(runs, "md", COVERAGE_COLUMNS)
    assert "t cov50 →0.5" in md
    assert "| a | 0.400 | **0.950** |" in md and "| b | **0.550** | 0.800 |" in md


@pytest.mark.slow
def test_an_interrupted_fold_continues_and_prints_its_table(
    tiny_demo, tmp_path, capsys, monkeypatch
):
    import os
    import shlex
    import signal

    import torch
    from lightning.pytorch import Callback

    from gml.cli.lightning import GMLCLI

    class TermAt3(Callback):  # SIGTERM, as a scheduler sends it, in the second epoch
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    before_fit = GMLCLI.before_fit

    def with_term(self):
        before_fit(self)
        self.trainer.callbacks.append(TermAt3())

    out = tmp_path / "cv"
    args = ["cv", "--config", DEMO, "--folds", "2", "--fold", "0", "--out", str(out),
            "--data.manifest", str(tiny_demo), *BASE, "--trainer.max_epochs", "2",
            "--trainer.log_every_n_steps", "1"]  # fmt: skip
    monkeypatch.setattr(GMLCLI, "before_fit", with_term)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    monkeypatch.undo()
    assert exit_.value.code == 143
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("gml: interrupted at epoch 1 step 3; resume with: gml cv ")
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[2:] == args[1:]  # the same command (its --out given)
    main(command[1:])
    printed = capsys.readouterr().out
    assert f"continuing {out / 'fold0'} from its last.ckpt" in printed
    assert "fold 0: its held-out stimuli" in printed and "demo-music" in printed
    assert f"gml cv --collect --out {out} --folds 2" in printed
    assert torch.load(out / "fold0" / "last.ckpt", weights_only=False)["global_step"] == 4
    metrics = pd.read_csv(out / "fold0" / "metrics.csv")
    assert list(metrics.loc[metrics["train/loss"].notna(), "step"]) == [0, 1, 2, 3]


def test_cv_passes_its_other_options_on_as_fit_overrides():
    from gml.cli.cv import overrides_of
    from gml.errors import GMLError

    got = overrides_of(
        ["--trainer.max_epochs", "5", "--model.optimizer.init_args.lr=1e-3",
         "--data.progress", "false", "--model.augment+=gml.augment.CutMix",
         "--data.manifest", "builtin:demo"]
    )  # fmt: skip
    assert got == {
        "trainer.max_epochs": 5,
        "model.optimizer.init_args.lr": 0.001,
        "data.progress": False,
        "model.augment+": "gml.augment.CutMix",  # appended by gml.train.fit, as on gml fit
        "data.manifest": "builtin:demo",
    }
    with pytest.raises(GMLError, match="has no value"):
        overrides_of(["--trainer.max_epochs"])

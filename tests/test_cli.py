"""The real ``gml`` command: every config under fast_dev_run, train → test round trip with a
non-default head and backbone, a listening test it has never seen, clear one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from gml.checkpoint import load_module
from gml.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _gml(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gml", *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_fast_dev_run(config, tiny_demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(config),
            "--data.manifest",
            str(tiny_demo),
            "--trainer.fast_dev_run",
            "1",
            "--trainer.accelerator",
            "cpu",
            "--data.progress",
            "false",
        ]
    )


def _fit(tmp_path: Path, manifest: Path | None, *extra: str) -> Path:
    """Train briefly with demo.yaml (+ ``extra``); ``manifest=None`` leaves the manifest to an
    extra ``--config``."""
    data = ["--data.manifest", str(manifest)] if manifest is not None else []
    main(
        [
            "fit",
            "--config", str(REPO / "configs" / "demo.yaml"),
            *data,
            "--data.progress", "false",
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "3",
            "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
            *extra,
        ]
    )  # fmt: skip
    (run,) = (tmp_path / "runs" / "demo").iterdir()
    return run


def test_fit_test_round_trip_non_default_head_and_backbone(
    noise_manifest, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    run = _fit(
        tmp_path,
        noise_manifest,
        "--model.head", "gml.heads.GaussianHead",
        "--model.head.init_args.scale_unit", "7.0",
        "--model.backbone.init_args.preset", "tiny",
        "--model.backbone.init_args.shared_views", "false",
    )  # fmt: skip
    assert {"best.ckpt", "last.ckpt", "config.yaml"} <= {p.name for p in run.iterdir()}
    out = capsys.readouterr().out
    assert "best.ckpt" in out and "gml test --ckpt" in out

    model = load_module(run / "best.ckpt")
    assert type(model.head).__name__ == "GaussianHead" and model.head.scale_unit == 7.0
    assert model.backbone.shared_views is False and len(model.backbone.branches) == 4
    state = torch.load(run / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])

    monkeypatch.chdir(REPO)  # a different working directory than the run's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(
            [
                "test",
                "--ckpt",
                str(run / "best.ckpt"),
                "--data.progress",
                "false",
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
    # gml's own resume callback is not needed to evaluate: Lightning's note about it is noise
    assert not [w for w in caught if "ResumePoint" in str(w.message)]
    out = capsys.readouterr().out
    assert "noise-test" in out and "Rp mean" in out and "metrics.json" in out
    metrics = json.loads((run / "test-best" / "metrics.json").read_text())
    res = metrics["test_sets"]["noise-test"]
    for key in (
        "mean_pearson",
        "mean_spearman",
        "outlier_ratio",
        "ci_pearson",
        "ci_spearman",
        "ci_rmse",
        "nll",
        "constant_nll",
    ):
        assert key in res
    preds = pd.read_csv(run / "test-best" / "predictions.csv")
    assert list(preds.columns[:9]) == [
        "test", "item", "condition", "n_listeners", "subjective_mean", "subjective_ci95",
        "predicted_mean", "predicted_std", "predicted_ci95",
    ]  # fmt: skip
    assert "snr_db" in preds.columns  # extra manifest columns are carried through
    assert (preds["n_listeners"] == 5).all() and preds["predicted_std"].gt(0).all()

    # the same predictions from the Python API
    from gml.data.datamodule import GMLDataModule

    dm = GMLDataModule(str(noise_manifest), progress=False)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()[0]))
    with torch.no_grad():
        dist = model(batch["features"])
    st = dm.stimuli.iloc[batch["index"].numpy()]
    merged = st.merge(preds, on=["test", "item", "condition"])
    torch.testing.assert_close(
        torch.tensor(merged["predicted_mean"].to_numpy(), dtype=torch.float32),
        dist.mean,
        atol=1e-3,
        rtol=0,
    )


def test_unseen_listening_test_from_yaml_manifest_path(split_manifest, tmp_path, monkeypatch):
    """A second, differently made listening test (mono, mixed rates, split column) trains and
    tests given only its manifest path in a YAML file; ``--ckpt_path`` works as ``--ckpt``."""
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "my-test.yaml"
    own.write_text(f"data:\n  manifest: {split_manifest}\n")
    run = _fit(tmp_path, None, "--config", str(own), "--model.backbone.init_args.preset", "tiny")
    main(["test", "--ckpt_path", str(run / "last.ckpt"), "--data.progress", "false"])
    preds = pd.read_csv(run / "test-last" / "predictions.csv")
    assert set(preds["test"]) == {"noise-test"}
    assert set(preds["item"]) == {"item4", "item5"}  # the split column's test items


def test_wandb_logger_offline(tiny_demo, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    main(
        [
            "fit", "--config", str(REPO / "configs" / "demo.yaml"),
            "--data.manifest", str(tiny_demo), "--data.progress", "false",
            "--model.backbone.init_args.preset", "tiny",
            "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
            "--trainer.logger", "lightning.pytorch.loggers.WandbLogger",
            "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--trainer.logger.init_args.project", "gml-test",
        ]
    )  # fmt: skip
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_help_lists_subcommands(tmp_path):
    r = _gml("--help", cwd=tmp_path)
    assert r.returncode == 0
    for sub in ("fit", "validate", "test", "predict", "compare", "calibrate", "cv", "configs"):
        assert f"  {sub} " in r.stdout
    # the top-level help imports neither torch nor Lightning (it answers in about a second)
    code = "import sys; from gml.cli import main; main(['--help']); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().endswith("False")
    assert _gml(cwd=tmp_path).returncode == 2  # no command: the help, and an error status


@pytest.mark.slow
def test_lightning_command_help(tmp_path):
    """gml's own options are listed, and nothing looks required that has a default."""
    fit = _gml("fit", "--help", cwd=tmp_path)
    assert fit.returncode == 0
    assert "[--model.backbone BACKBONE]" in fit.stdout  # optional: the paper-size InSE-Net
    for option in ("--resume", "--debug", "--verbose"):
        assert option in fit.stdout
    test = _gml("test", "--help", cwd=tmp_path)
    assert test.returncode == 0 and "--ckpt" in test.stdout and "--debug" in test.stdout


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, no traceback, and the last line of stderr is the one error line."""
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "error" in last.lower(), r.stderr
    for n in needles:
        assert n in last, r.stderr


def _mutate_drop_listener(df):
    return df.drop(columns=["listener"])


def _mutate_bad_score(df):
    df.loc[4, "score"] = "loud"
    return df


def _mutate_missing_audio(df):
    df.loc[7, "coded"] = "wav/gone.wav"
    return df


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (_mutate_drop_listener, ("bad.csv", "missing column(s) listener")),
        (_mutate_bad_score, ("bad.csv", "row 6, column 'score'", "'loud' is not a number")),
        (_mutate_missing_audio, ("bad.csv", "row 9, column 'coded'", "gone.wav")),
    ],
)
def test_bad_manifest_is_one_clear_line(tmp_path, noise_manifest, mutate, needles):
    df = mutate(pd.read_csv(noise_manifest, dtype=str))
    (tmp_path / "wav").symlink_to(noise_manifest.parent / "wav")
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    demo = str(REPO / "configs" / "demo.yaml")
    r = _gml(
        "fit",
        "--config",
        demo,
        "--data.manifest",
        str(bad),
        "--trainer.max_steps",
        "1",
        cwd=tmp_path,
    )
    _one_line_error(r, *needles)
    assert not (tmp_path / "runs").exists()  # reported before a run folder exists


_CHECK_IMPORTS = """
import sys
from gml.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    print("rc", e.code, "lightning" in sys.modules, "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    "args, needle",
    [
        (("fit", "--config", "demo", "--data.manifest", "nope.csv"), "nope.csv: manifest file"),
        (("fit", "--config", "demo", "--data.manifest", "BAD"), "row 9, column 'coded'"),
        (("test", "--ckpt", "nope.ckpt"), "nope.ckpt: checkpoint not found"),
        (("fit", "--resume", "nowhere"), "not a resumable run folder"),
    ],
)
def test_input_errors_answer_before_lightning_is_imported(tmp_path, noise_manifest, args, needle):
    """Missing files and bad manifests are reported without importing torch or Lightning
    (about a second instead of ten)."""
    df = _mutate_missing_audio(pd.read_csv(noise_manifest, dtype=str))
    (tmp_path / "wav").symlink_to(noise_manifest.parent / "wav")
    df.to_csv(tmp_path / "bad.csv", index=False)
    args = [str(tmp_path / "bad.csv") if a == "BAD" else a for a in args]
    r = subprocess.run(
        [sys.executable, "-c", _CHECK_IMPORTS, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout.strip() == "rc 2 False False", (r.stdout, r.stderr)
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "runs").exists()


def test_fit_checks_the_manifest_before_creating_the_run_folder(tmp_path, noise_manifest):
    """The data module's own check (for GMLCLI used from Python, without the CLI's
    pre-check) also runs before the run folder is made."""
    from gml.cli.lightning import run
    from gml.errors import GMLError

    df = _mutate_missing_audio(pd.read_csv(noise_manifest, dtype=str))
    (tmp_path / "wav").symlink_to(noise_manifest.parent / "wav")
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(GMLError, match="gone.wav"):
        run(["fit", "--config", str(REPO / "configs" / "demo.yaml"),
             "--data.manifest", str(tmp_path / "bad.csv"),
             "--trainer.default_root_dir", str(tmp_path / "root")])  # fmt: skip
    assert not (tmp_path / "root").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_unknown_config_key(tmp_path):
    r = _gml(
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--data.no_such_key",
        "1",
        cwd=tmp_path,
    )
    _one_line_error(r, "no_such_key")


@pytest.mark.slow
def test_not_a_checkpoint(tmp_path):
    fake = tmp_path / "x.ckpt"
    fake.write_text("hello")
    r = _gml("test", "--ckpt", str(fake), cwd=tmp_path)
    _one_line_error(r, "x.ckpt", "not a readable PyTorch checkpoint")


def test_evaluation_writes_nothing_in_cwd(tiny_run, tmp_path, monkeypatch):
    run = tiny_run  # demo.yaml, tiny preset, on the noise test: no training of its own
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    main(["validate", "--ckpt", str(run / "last.ckpt"), "--data.progress", "false"])
    assert list(elsewhere.iterdir()) == []


def test_predict_writes_predictions(tiny_run, tmp_path, monkeypatch, capsys):
    run = tiny_run  # demo.yaml, tiny preset, on the noise test: no training of its own
    monkeypatch.chdir(tmp_path)
    main(["predict", "--ckpt", str(run / "last.ckpt"), "--no-progress"])
    out = run / "predict-last" / "predictions.csv"
    assert str(out) in capsys.readouterr().out
    preds = pd.read_csv(out)
    assert len(preds) == 18 and preds["predicted_std"].gt(0).all()
    assert set(preds["partition"]) == {"train", "val", "test"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model.head", "gml.heads.Nope"], "cannot use class_path 'gml.heads.Nope'"),
        (["--model.backbone.init_args.preset", "huge"], "unknown InSENet preset 'huge'"),
        (["--data.batch_size", "abc"], 'Parser key "data.batch_size"'),
    ],
)
def test_bad_values_are_one_line(tmp_path, args, needle):
    r = _gml("fit", "--config", str(REPO / "configs" / "demo.yaml"), *args, cwd=tmp_path)
    _one_line_error(r, needle)


class PoolBackbone(torch.nn.Module):
    """A user's backbone with the same contract and no ``out_features`` attribute."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.lin = torch.nn.Linear(4 * 2 * 32, width)

    def forward(self, x):
        return torch.relu(self.lin(x.mean(dim=-1).flatten(1)))


def test_any_backbone_by_class_path(noise_manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _fit(
        tmp_path,
        noise_manifest,
        "--model.backbone",
        f"{__name__}.PoolBackbone",
        "--model.backbone.init_args.width",
        "5",
    )
    model = load_module(run / "last.ckpt")
    assert isinstance(model.backbone, PoolBackbone) and model.head.proj.in_features == 5


def test_evaluate_on_another_listening_test(noise_manifest, split_manifest, tmp_path, monkeypatch):
    """test_all: every stimulus of a new manifest is tested; the checkpoint's own results are
    kept; outputs are readable by others (not mkstemp's 0600)."""
    monkeypatch.chdir(tmp_path)
    run = _fit(tmp_path, noise_manifest, "--model.backbone.init_args.preset", "tiny")
    main(["test", "--ckpt", str(run / "last.ckpt"), "--data.progress", "false"])
    own = run / "test-last" / "predictions.csv"
    before = own.read_bytes()
    main(
        [
            "test",
            "--ckpt",
            str(run / "last.ckpt"),
            "--data.manifest",
            str(split_manifest),
            "--data.test_all",
            "true",
            "--data.progress",
            "false",
        ]
    )
    assert own.read_bytes() == before
    (other,) = [d for d in run.iterdir() if d.name.startswith("test-last-")]
    preds = pd.read_csv(other / "predictions.csv")
    assert len(preds) == 18  # all stimuli, not one fold
    metrics = json.loads((other / "metrics.json").read_text())["test_sets"]["noise-test"]
    assert metrics["constant_nll"] is None  # no training scores in that manifest: n/a, no crash
    assert (other / "metrics.json").stat().st_mode & 0o044 == 0o044


def test_default_root_dir_holds_the_run_and_is_printed_first(
    tiny_demo, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.manifest", str(tiny_demo),
          "--data.progress", "false", "--model.backbone.init_args.preset", "tiny",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
          "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
          "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "root")])  # fmt: skip
    run = tmp_path / "root" / "runs" / "demo" / "version_0"
    assert (run / "best.ckpt").is_file() and not (tmp_path / "runs").exists()
    out = capsys.readouterr().out
    assert out.index(f"gml: run folder {run}") < out.index("gml: finished")


def test_messages_during_a_progress_bar_get_their_own_line():
    """An error or warning printed while a bar is drawn starts on a line of its own."""
    import io

    from tqdm import tqdm

    from gml.cli import emit

    stream = io.StringIO()
    bar = tqdm(total=10, file=stream, ascii=True, mininterval=0)
    bar.update(3)
    emit("gml: error: x.wav: not a sound file", stream)
    bar.close()
    text = stream.getvalue()
    before = text[: text.index("gml: error")]
    # the bar's line was cleared (carriage return) before the message, not appended to
    assert before.endswith("\r") or before.endswith("\n"), repr(text)
    line = [s for s in text.replace("\r", "\n").split("\n") if "gml: error" in s][0]
    assert line == "gml: error: x.wav: not a sound file"


def test_no_lightning_tips_or_notes_from_any_command(tiny_run, tmp_path, caplog):
    """Lightning's INFO records (accelerator lines, the "litlogger" tip, "`weights_only` was
    not set") are log records, not warnings: hidden in every command, also those that are
    not fit/validate/test (here the ensemble test, which also reads two checkpoints)."""
    import logging

    logging.disable(logging.NOTSET)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.INFO)  # as a fresh import leaves them
    best = str(tiny_run / "best.ckpt")
    with caplog.at_level(logging.INFO):
        main(["test", "--ckpt", best, "--ckpt", best, "--out", str(tmp_path / "t"),
              "--data.progress", "false", "--trainer.accelerator", "cpu"])  # fmt: skip
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("lightning")]

"""Shared fixtures: one thread for torch, offline wandb, a private cache, small corpora."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the feature cache and demo corpus of the tests out of the user's cache."""
    old = os.environ.get("GML_CACHE_DIR")
    os.environ["GML_CACHE_DIR"] = str(tmp_path_factory.mktemp("gml-cache"))
    yield
    if old is None:
        os.environ.pop("GML_CACHE_DIR", None)
    else:
        os.environ["GML_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A small built-in-demo corpus (both tests, short excerpts, small panels)."""
    from gml.data.demo import make_demo

    root = tmp_path_factory.mktemp("demo")
    return Path(
        make_demo(
            root,
            seconds=1.0,
            music_items=5,
            speech_items=5,
            music_listeners=4,
            speech_listeners=3,
            progress=False,
        )
    )


def make_noise_test(
    root: Path,
    items: int = 6,
    seconds: float = 1.0,
    listeners: int = 5,
    seed: int = 1,
    split: bool = False,
) -> Path:
    """A listening test made differently from the demo: mono tones + white noise at several
    SNRs, scores following the SNR; optional ``split`` column. Returns the manifest path."""
    rng = np.random.default_rng(seed)
    sr = 48000
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    (root / "wav").mkdir(parents=True, exist_ok=True)
    for i in range(items):
        clean = (
            0.2 * np.sin(2 * np.pi * (200 + 150 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        )
        ref = root / "wav" / f"item{i}_ref.wav"
        sf.write(ref, clean.astype(np.float32), sr)  # mono on purpose: exercises L = R
        for snr in (40, 20, 5):
            noisy = clean + rng.normal(0, 0.2 / np.sqrt(2) * 10 ** (-snr / 20), len(t))
            cod = root / "wav" / f"item{i}_snr{snr}.wav"
            sf.write(cod, noisy.astype(np.float32), 44100 if i % 2 else sr)  # mixed rates
            for k in range(listeners):
                score = float(np.clip(20 + 1.8 * snr + rng.normal(0, 6), 0, 100))
                row = {
                    "test": "noise-test",
                    "item": f"item{i}",
                    "condition": f"snr{snr}",
                    "listener": f"L{k}",
                    "score": round(score, 1),
                    "reference": f"wav/{ref.name}",
                    "coded": f"wav/{cod.name}",
                    "snr_db": snr,
                }
                if split:
                    row["split"] = ("train", "train", "train", "val", "test", "test")[i % 6]
                rows.append(row)
    path = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def noise_manifest(tmp_path_factory) -> Path:
    return make_noise_test(tmp_path_factory.mktemp("noise"))


@pytest.fixture(scope="session")
def split_manifest(tmp_path_factory) -> Path:
    return make_noise_test(tmp_path_factory.mktemp("noise-split"), split=True)


def fit_tiny(manifest: Path, root: Path, *extra: str) -> Path:
    """Train a tiny GML briefly through the real CLI; returns its run folder."""
    from gml.cli import main

    repo = Path(__file__).resolve().parents[1]
    main(
        [
            "fit",
            "--config", str(repo / "configs" / "demo.yaml"),
            "--data.manifest", str(manifest),
            "--data.progress", "false",
            "--model.backbone.init_args.preset", "tiny",
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "3",
            "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(root / "runs"),
            *extra,
        ]
    )  # fmt: skip
    (run,) = (root / "runs" / "demo").iterdir()
    return run


@pytest.fixture(scope="session")
def tiny_run(noise_manifest, tmp_path_factory) -> Path:
    """A run folder (best.ckpt, last.ckpt) of a tiny model trained on the noise test."""
    return fit_tiny(noise_manifest, tmp_path_factory.mktemp("tiny-run"))


def write_pair(root: Path, seconds: float = 2.0, rate: int = 48000, seed: int = 0, mono=False):
    """A reference (tones) and a noisier coded version; returns both paths."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    ref = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    cod = ref + rng.normal(0, 0.02, ref.shape)
    if mono:
        ref, cod = ref[:, 0], cod[:, 0]
    root.mkdir(parents=True, exist_ok=True)
    rp, cp = root / f"ref{seed}.wav", root / f"cod{seed}.wav"
    sf.write(rp, ref.astype(np.float32), rate)
    sf.write(cp, cod.astype(np.float32), rate)
    return rp, cp


def _is_cuda_skip(report) -> bool:
    """A test skipped because this machine has no CUDA device (its reason names CUDA)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return "cuda" in str(reason).lower()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say how many CUDA tests were skipped, so that a green run on a machine without a GPU
    is not read as "the GPU path is verified" (``.ci/run`` shows this line too)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _is_cuda_skip(r)]
    if skipped:
        terminalreporter.write_line(
            f"gml: {len(skipped)} CUDA test(s) skipped (no CUDA device): this run does not "
            "verify the GPU path"
        )
    elif torch.cuda.is_available():
        terminalreporter.write_line("gml: CUDA tests ran on " + torch.cuda.get_device_name(0))

"""The feature cache: content-hash keys, damaged entries, killed and concurrent writers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from gml.data.cache import FeatureCache
from gml.features import GammatoneFrontend
from gml.features.stream import streamed_spectrogram


@pytest.fixture()
def corpus(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        p = tmp_path / "corpus" / f"f{k}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, (0.1 * rng.standard_normal((24000, 2))).astype(np.float32), 48000)
        paths.append(str(p))
    return paths


def _entries(d: Path) -> dict[str, int]:
    return {e.name: e.stat().st_mtime_ns for e in d.glob("*.npy")}


def test_features_equal_the_listeners_and_a_moved_corpus_hits(corpus, tmp_path):
    fe = GammatoneFrontend()
    cache = tmp_path / "cache"
    first = FeatureCache(fe, cache, progress=False).get_many(corpus)
    expected, _ = streamed_spectrogram(corpus[0], fe)
    torch.testing.assert_close(first[corpus[0]], expected, rtol=0, atol=0)
    before = _entries(cache)
    assert len(before) == 3
    moved = tmp_path / "elsewhere"
    shutil.copytree(Path(corpus[0]).parent, moved)  # copied: new paths and mtimes, same bytes
    again = FeatureCache(fe, cache, progress=False).get_many(str(p) for p in moved.glob("*.wav"))
    assert _entries(cache) == before  # nothing recomputed or rewritten
    torch.testing.assert_close(again[str(moved / "f0.wav")], first[corpus[0]])


def test_other_settings_or_content_miss(corpus, tmp_path):
    cache = tmp_path / "cache"
    FeatureCache(GammatoneFrontend(), cache, progress=False).get_many(corpus)
    FeatureCache(GammatoneFrontend(rel_floor_db=30.0), cache, progress=False).get_many(corpus)
    assert len(_entries(cache)) == 6
    data, rate = sf.read(corpus[0])
    sf.write(corpus[0], data * 0.5, rate)
    FeatureCache(GammatoneFrontend(), cache, progress=False).get_many(corpus)
    assert len(_entries(cache)) == 7


def test_a_truncated_entry_is_recomputed(corpus, tmp_path):
    fe = GammatoneFrontend()
    cache = tmp_path / "cache"
    good = FeatureCache(fe, cache, progress=False).get_many(corpus)
    entry = cache / f"{FeatureCache(fe, cache).key(corpus[1])}.npy"
    entry.write_bytes(entry.read_bytes()[:200])  # a damaged copy, or a disk-full write
    again = FeatureCache(fe, cache, progress=False).get_many(corpus)
    torch.testing.assert_close(again[corpus[1]], good[corpus[1]])
    assert np.load(entry).shape == tuple(good[corpus[1]].shape)


def test_a_killed_writer_leaves_no_entry_behind(corpus, tmp_path):
    """A writer killed mid-write leaves only its hidden temporary file; the entry is computed
    normally next time and the temporary is never read."""
    fe = GammatoneFrontend()
    cache = tmp_path / "cache"
    cache.mkdir()
    key = FeatureCache(fe, cache).key(corpus[0])
    (cache / f".{key}.npy.123.tmp").write_bytes(b"\x93NUMPY half")
    out = FeatureCache(fe, cache, progress=False).get_many(corpus)
    assert (cache / f"{key}.npy").is_file() and out[corpus[0]].shape[0] == 4


_WRITER = """
import sys, torch
torch.set_num_threads(1)
from gml.data.cache import FeatureCache
from gml.features import GammatoneFrontend
FeatureCache(GammatoneFrontend(), sys.argv[1], progress=False, workers=1).get_many(sys.argv[2:])
"""


def test_two_concurrent_writers(corpus, tmp_path):
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(cache), *corpus]) for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert not list(cache.glob(".*.tmp"))
    fe = GammatoneFrontend()
    for p in corpus:
        entry = cache / f"{FeatureCache(fe, cache).key(p)}.npy"
        expected, _ = streamed_spectrogram(p, fe)
        np.testing.assert_array_equal(np.load(entry), expected.numpy())


def test_gml_features_precomputes_a_manifest(noise_manifest, tmp_path, capsys):
    from gml.cli import main

    args = ["features", "--manifest", str(noise_manifest), "--cache-dir", str(tmp_path / "c"),
            "--no-progress", "--workers", "2"]  # fmt: skip
    main(args)
    assert "24 features computed, 0 already cached" in capsys.readouterr().out
    main(args)
    assert "0 features computed, 24 already cached" in capsys.readouterr().out


def test_gml_features_covers_what_training_reads_also_after_a_codec_delay(tmp_path, capsys):
    """Coded files with a codec delay are read after its removal: precomputed so too, a fit
    afterwards computes no feature at all."""
    from gml.cli import main

    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    rows = []
    for i in range(5):
        x = np.sin(2 * np.pi * (300 + 70 * i) * t) * rng.uniform(0.2, 1, 9).repeat(6000)[:48000]
        ref = 0.3 * np.stack([x, np.roll(x, 5)], 1) + 0.01 * rng.standard_normal((48000, 2))
        late = np.concatenate([np.zeros((1200 + 240 * i, 2)), ref])  # 25-45 ms codec delay
        sf.write(tmp_path / f"ref{i}.wav", ref.astype(np.float32), 48000)
        sf.write(tmp_path / f"late{i}.wav", late.astype(np.float32), 48000)
        rows += [
            {"test": "t", "item": f"i{i}", "condition": c, "listener": f"L{k}",
             "score": 40 + 10 * k + 5 * (c == "same"), "reference": f"ref{i}.wav",
             "coded": f"{c if c == 'late' else 'ref'}{i}.wav"}
            for c in ("same", "late") for k in range(3)
        ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    cache = str(tmp_path / "cache")
    main(["features", "--manifest", str(tmp_path / "m.csv"), "--cache-dir", cache,
          "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert "10 stimuli (5 with a codec delay" in out and "10 features computed" in out
    computed = FeatureCache.computed
    main(["fit", "--config", "demo", "--data.manifest", str(tmp_path / "m.csv"),
          "--data.cache_dir", cache, "--data.progress", "false",
          "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1",
          "--trainer.limit_train_batches", "1", "--trainer.accelerator", "cpu",
          "--trainer.enable_progress_bar", "false",
          "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])  # fmt: skip
    assert FeatureCache.computed == computed

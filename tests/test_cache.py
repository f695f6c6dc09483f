"""The feature cache: content-hash keys, damaged entries, killed and concurrent writers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert "24 audio files, 24 computed, 0 already cached" in capsys.readouterr().out
    main(args)
    assert "0 computed, 24 already cached" in capsys.readouterr().out

"""Worker reading of audio pairs (gml.data.pair_audio): the packed signals are exactly what
load_audio reads, batches group similar lengths within a budget, errors name the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from gml.data.pair_audio import (
    PairAudio,
    PairFeed,
    collate_pairs,
    device_samples,
    gather_signals,
    length_batches,
    signal,
    signal_layout,
    signal_length,
)
from gml.features import load_audio

FS = 48000


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((FS, 2))).astype(np.float32)
    out = {}
    for name, data, rate, subtype in [
        ("stereo16.wav", x, FS, "PCM_16"),
        ("mono16.flac", x[:, 0], FS, "PCM_16"),
        ("stereo24.wav", x[: FS // 2], FS, "PCM_24"),
        ("mono44k.wav", x[:44100, 1], 44100, "FLOAT"),
    ]:
        sf.write(tmp_path / name, data, rate, subtype=subtype)
        out[name] = str(tmp_path / name)
    return out


def test_packed_signals_are_load_audio_exactly(files):
    names = list(files)
    ds = PairAudio(
        [files[n] for n in names], [files[n] for n in reversed(names)], FS, 0.08, align=False
    )
    items = [ds[i] for i in range(len(ds))]
    kinds = [it["reference"][0] for it in items]
    assert kinds == ["pcm16", "pcm16", "float", "float"]  # integers only for 16-bit at 48 kHz
    batch = collate_pairs(items)
    buffers = {k: batch[k] for k in ("pcm16", "float")}
    for meta, name in zip(batch["pairs"], names):
        wave = signal(buffers, meta, "reference")
        expected = load_audio(files[name], FS)
        assert signal_length(meta, "reference") == expected.shape[1]
        assert torch.equal(wave.contiguous(), torch.from_numpy(expected)), name
        assert meta["reference_info"].source == files[name]
    assert batch["pairs"][3]["reference_info"].sample_rate == 44100


def test_gathered_signals_are_the_packed_signals_without_their_skips(files):
    """One gather cuts every signal of a batch (16-bit stereo and mono, float) from the flat
    samples into a zero-padded tensor, each without its first samples (a codec delay)."""
    names = list(files)
    ds = PairAudio([files[n] for n in names], [files[n] for n in names], FS, 0.08)
    batch = collate_pairs([ds[i] for i in range(len(ds))])
    samples = device_samples(batch, torch.device("cpu"))
    metas = [(meta, "reference") for meta in batch["pairs"]]
    layouts = [signal_layout(m, k, batch["pcm16"].numel()) for m, k in metas]
    skips = [0, 1440, 7, 100]
    width = max(signal_length(m, k) for m, k in metas)
    rows = gather_signals(samples, layouts, skips, width)
    assert rows.shape == (4, 2, width)
    for row, (meta, key), skip in zip(rows, metas, skips):
        wave = signal({k: batch[k] for k in ("pcm16", "float")}, meta, key)[:, skip:]
        n = wave.shape[1]
        assert torch.equal(row[:, :n], wave) and not row[:, n:].any()


def test_worker_batches_arrive_in_shared_memory_with_every_pair(files):
    refs = [files["stereo16.wav"]] * 5
    cods = [files["stereo16.wav"], files["mono16.flac"]] * 2 + [files["mono44k.wav"]]
    seen = []
    feed = PairFeed(FS, 0.08, align=True, delay_on_device=True, num_workers=1)
    for batch in feed.batches(refs, cods, batch_seconds=2.5):
        assert batch["pcm16"].is_shared()
        seen += [it["index"] for it in batch["pairs"]]
        for it in batch["pairs"]:
            # the delay is left to the device only when both files are at 48 kHz
            assert (it["delay"] is None) == (it["index"] != 4)
    feed.close()
    assert sorted(seen) == list(range(5))


def test_length_batches_sort_by_size_and_respect_the_budget(tmp_path):
    sizes = [5, 1, 3, 50, 2]
    paths = []
    for k, n in enumerate(sizes):
        p = tmp_path / f"f{k}"
        p.write_bytes(b"x" * n)
        paths.append(str(p))
    batches = length_batches(paths, paths, bytes_per_batch=16, max_pairs=2)  # pairs: 2x
    assert [i for b in batches for i in b] == [1, 4, 2, 0, 3]  # by size
    assert batches == [[1, 4], [2, 0], [3]]  # at most 2 pairs and 16 bytes; 100 alone
    assert length_batches(paths + [str(tmp_path / "missing")], paths + ["x"], 10**6, 9)[0][0] == 5


def test_an_unusable_file_is_an_item_error_naming_it(files, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros((100, 2), np.float32), FS)
    ds = PairAudio([files["stereo16.wav"]] * 3, [str(bad), str(short), "gone.wav"], FS, 0.08)
    messages = [str(ds[i]["error"]) for i in range(3)]
    assert "bad.wav: cannot be read as audio" in messages[0]
    assert "short.wav: lasts 2.1 ms" in messages[1]
    assert "gone.wav: file not found" in messages[2]

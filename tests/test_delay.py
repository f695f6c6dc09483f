"""Codec delay: estimation on shifted signals and real codec output, and its compensation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

import gml
from gml.features import GammatoneFrontend
from gml.features.delay import estimate_delay
from gml.features.stream import streamed_spectrogram

from .conftest import SHARED

VISQOL = SHARED / "data" / "visqol-conformance"
FS = 48000


def _music(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Tones with a random envelope and some noise: a signal whose autocorrelation is peaky."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    env = np.repeat(rng.uniform(0.2, 1.0, int(seconds * 8) + 1), FS // 8)[: len(t)]
    x = env * (np.sin(2 * np.pi * 330 * t) + 0.5 * np.sin(2 * np.pi * 1250 * t))
    x = x + 0.05 * rng.standard_normal(len(t))
    return (0.3 * np.stack([x, np.roll(x, 7)])).astype(np.float32)


def _shift(x: np.ndarray, d: int) -> np.ndarray:
    """``x`` delayed by ``d`` samples (zeros in front; negative: cut from the front)."""
    if d >= 0:
        return np.concatenate([np.zeros((2, d), np.float32), x], axis=1)
    return x[:, -d:]


@pytest.mark.parametrize("d", [0, 1234, 4800, -500])
def test_known_delays_are_recovered(d):
    ref = _music()
    rng = np.random.default_rng(1)
    cod = (
        _shift(ref, d)
        + 0.01
        * rng.standard_normal((2, ref.shape[1] + max(d, -d))).astype(np.float32)[
            :, : _shift(ref, d).shape[1]
        ]
    )
    est = estimate_delay((ref, FS), (cod, FS))
    assert abs(est.samples - d) <= 1 and est.correlation > 0.9


def test_delay_across_sample_rates():
    ref = _music()
    cod = resample_poly(_shift(ref, 2400), 147, 160, axis=1).astype(np.float32)  # 44.1 kHz
    est = estimate_delay((ref, FS), (cod, 44100))
    assert abs(est.samples - 2400) <= 2


def test_unrelated_or_silent_signals_have_no_delay():
    silent = np.zeros((2, FS), np.float32)
    assert estimate_delay((_music(), FS), (silent, FS)).samples == 0
    noise = np.random.default_rng(3).standard_normal((2, 3 * FS)).astype(np.float32) * 0.1
    assert estimate_delay((_music(), FS), (noise, FS)).samples == 0


def test_skip_samples_equals_cutting_the_audio():
    fe = GammatoneFrontend()
    x = _music(2.0)
    skipped, _ = streamed_spectrogram((x, FS), fe, block_seconds=0.5, skip_samples=1234)
    torch.testing.assert_close(skipped, fe.spectrogram(torch.from_numpy(x[:, 1234:].copy())))


def test_listener_removes_the_delay(tiny_run, tmp_path):
    ref = _music()
    sf.write(tmp_path / "ref.wav", ref.T, FS, subtype="FLOAT")
    sf.write(tmp_path / "late.wav", _shift(ref, 3000).T, FS, subtype="FLOAT")
    lis = gml.load(tiny_run, device="cpu")
    same = lis.predict(tmp_path / "ref.wav", tmp_path / "ref.wav")
    late = lis.predict(tmp_path / "ref.wav", tmp_path / "late.wav")
    assert late.delay_ms == pytest.approx(62.5) and same.delay_ms == 0.0
    assert late.mean == pytest.approx(same.mean, abs=1e-3)
    unaligned = gml.load(tiny_run, device="cpu", align=False).predict(
        tmp_path / "ref.wav", tmp_path / "late.wav"
    )
    assert unaligned.delay_ms == 0.0 and unaligned.mean != pytest.approx(same.mean, abs=1e-3)


@pytest.mark.skipif(not VISQOL.is_dir(), reason="needs ../shared/data/visqol-conformance")
def test_real_codec_delays():
    pairs = pd.read_csv(VISQOL / "pairs.csv").set_index("codec")
    found = {
        c: estimate_delay(VISQOL / pairs.loc[c, "reference"], VISQOL / pairs.loc[c, "coded"])
        for c in ("identity", "mp3_96k", "aac_24k", "aac_48k", "aac_256k", "lowpass_7k")
    }
    assert found["identity"].samples == 0 and found["lowpass_7k"].samples == 0
    assert found["mp3_96k"].samples == 1105  # the MP3 decoder delay (576 + 529 samples)
    for c in ("aac_24k", "aac_48k", "aac_256k"):
        # the glockenspiel (aac_48k) is tonal up to the coarse search's band edge: a coarse
        # low-pass that dulls 2-4 kHz finds a wrong, weaker peak there
        assert 0.02 < found[c].seconds < 0.15, (c, found[c])
    # the AAC files are longer than their references by about their delay
    for c in ("aac_24k", "aac_256k"):
        extra = (
            sf.info(VISQOL / pairs.loc[c, "coded"]).frames
            - sf.info(VISQOL / pairs.loc[c, "reference"]).frames
        )
        assert extra >= found[c].samples - 1024


def test_a_periodic_signal_gets_the_smallest_matching_shift():
    t = np.arange(2 * FS) / FS
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None].repeat(2, 0)
    longer = np.concatenate([tone, tone], axis=1)  # every whole period of shift fits as well
    assert estimate_delay((tone, FS), (longer, FS)).samples == 0


def test_training_data_are_aligned_like_the_listener(tmp_path):
    from gml.data.datamodule import GMLDataModule

    ref = _music(2.0)
    sf.write(tmp_path / "ref.wav", ref.T, FS, subtype="FLOAT")
    sf.write(tmp_path / "late.wav", _shift(ref, 2400).T, FS, subtype="FLOAT")
    rows = [
        {"test": "t", "item": "i", "condition": c, "listener": f"L{k}", "score": 50 + k,
         "reference": "ref.wav", "coded": cod}
        for c, cod in (("same", "ref.wav"), ("late", "late.wav")) for k in range(3)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    dm = GMLDataModule(str(tmp_path / "m.csv"), progress=False, cache_dir=str(tmp_path / "c"))
    dm.setup("test")
    st = dm.stimuli.set_index("condition")
    assert st.loc["late", "delay_ms"] == pytest.approx(50.0) and st.loc["same", "delay_ms"] == 0
    i = int(np.flatnonzero(dm.stimuli["condition"] == "late")[0])
    pair = dm._stimuli.pair(i)
    torch.testing.assert_close(pair[:, 1], pair[:, 0])  # coded == reference once aligned
    assert (tmp_path / "c" / "features" / "delays.json").is_file()
    off = GMLDataModule(str(tmp_path / "m.csv"), progress=False, align=False,
                        cache_dir=str(tmp_path / "c"))  # fmt: skip
    off.setup("test")
    assert (off.stimuli["delay_ms"] == 0).all()


def _torch_delays(pairs: list[tuple[np.ndarray, np.ndarray]]):
    """The batched torch search on mono heads, zero-padded into one batch as the listener's
    worker path pads them."""
    from gml.features.delay import delays_of_heads_torch

    rows = []
    for side in (0, 1):
        heads = [pair[side] for pair in pairs]
        batch = torch.zeros(len(heads), max(len(h) for h in heads))
        for b, h in enumerate(heads):
            batch[b, : len(h)] = torch.from_numpy(h)
        rows += [batch, [len(h) for h in heads]]
    return delays_of_heads_torch(*rows, FS)


def _torch_and_numpy_delays(ref: np.ndarray, cod: np.ndarray, rate: int = FS):
    """Both searches on the same decoded samples (``[n, channels]``)."""
    from gml.features.delay import delay_of_mono, mono_head

    a, b = mono_head(ref, 30.5, rate), mono_head(cod, 30.5, rate)
    return delay_of_mono((a, rate), (b, rate), FS), _torch_delays([(a, b)])[0]


@pytest.mark.parametrize("d", [0, 1234, -500, 20000])
def test_the_torch_search_finds_the_numpy_delay(d):
    """The search that runs on a GPU in the worker path gives the same delay and
    correlation as the CPU one (here both on the CPU), also for silence and noise."""
    noise = np.random.default_rng(2).standard_normal((2, 3 * FS)).astype(np.float32)
    ref = _music(seed=2) + 0.1 * noise  # noisy enough for one clear peak
    cod = _shift(ref, d)[:, : ref.shape[1]] * 0.7
    cpu, dev = _torch_and_numpy_delays(ref.T.copy(), cod.T.copy())
    assert cpu.samples == dev.samples == d
    assert dev.correlation == pytest.approx(cpu.correlation, abs=1e-9)
    silent = np.zeros_like(ref.T)
    assert _torch_and_numpy_delays(ref.T.copy(), silent)[1].samples == 0


@pytest.mark.skipif(not VISQOL.is_dir(), reason="needs ../shared/data/visqol-conformance")
def test_the_torch_search_on_real_codec_pairs():
    from gml.features.audio import read_audio

    pairs = pd.read_csv(VISQOL / "pairs.csv")
    for r, c in zip(pairs["reference"], pairs["coded"]):
        (a, ra), (b, rb) = read_audio(VISQOL / r), read_audio(VISQOL / c)
        assert ra == rb == FS
        cpu, dev = _torch_and_numpy_delays(a, b)
        assert dev.samples == cpu.samples, c
        assert dev.correlation == pytest.approx(cpu.correlation, abs=1e-9), c


def test_a_batch_of_pairs_of_different_lengths_gives_each_pairs_delay():
    """The batched search (one set of FFTs for pairs of any lengths) equals the CPU search
    pair by pair."""
    from gml.features.delay import delay_of_mono, mono_head

    rng = np.random.default_rng(5)
    pairs, expected = [], []
    for k, (seconds, d) in enumerate([(1.0, 300), (2.5, -1200), (1.7, 0), (3.0, 4000)]):
        ref = (_music(seconds, seed=k) + 0.1 * rng.standard_normal((2, int(seconds * FS)))).T
        cod = _shift(ref.T.astype(np.float32), d).T[: len(ref) + 100] * 0.5
        a, b = mono_head(ref.astype(np.float32), 30.5, FS), mono_head(cod.copy(), 30.5, FS)
        expected.append(delay_of_mono((a, FS), (b, FS)))
        pairs.append((a, b))
    got = _torch_delays(pairs)
    assert [g.samples for g in got] == [e.samples for e in expected] == [300, -1200, 0, 4000]
    for g, e in zip(got, expected):
        assert g.correlation == pytest.approx(e.correlation, abs=1e-9)


def test_fast_length_is_scipys_next_fast_len_for_real_ffts():
    """The FFT length of the delay search (numpy's FFT, without importing scipy.fft) is the
    one scipy would choose: the smallest 5-smooth number not below n."""
    from scipy.fft import next_fast_len

    from gml.features.delay import fast_length

    rng = np.random.default_rng(0)
    for n in [*range(1, 3000), *rng.integers(3000, 10**7, 500).tolist()]:
        assert fast_length(n) == next_fast_len(n, real=True), n

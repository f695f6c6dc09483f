"""Tests for gml.features: audio loading/padding and the gammatone frontend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from gml.features import AudioError, GammatoneFrontend, load_audio, pad_pair

torch.set_num_threads(1)

FS = 48000


@pytest.fixture(scope="module")
def frontend() -> GammatoneFrontend:
    return GammatoneFrontend()


def _sine(freq: float, n: int, fs: int = FS, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / fs)).astype(np.float32)


def _noise(n: int, seed: int, channels: int = 2, scale: float = 0.1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(channels, n, generator=gen)


# ---------------------------------------------------------------- load_audio


def test_load_stereo_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = (0.5 * rng.standard_normal((4800, 2))).clip(-1, 1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, data, FS, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (2, 4800)
    np.testing.assert_array_equal(audio, data.T)


def test_load_pcm16_scaled_to_unit_range(tmp_path):
    data = np.stack([_sine(440, 4800), -_sine(440, 4800)], axis=1)
    path = tmp_path / "pcm.flac"
    sf.write(path, data, FS, subtype="PCM_16")
    audio = load_audio(str(path))
    np.testing.assert_allclose(audio, data.T, atol=1.0 / 2**15)


def test_load_mono_is_dual_mono(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, _sine(1000, 2400), FS, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.shape == (2, 2400)
    np.testing.assert_array_equal(audio[0], audio[1])
    np.testing.assert_array_equal(audio[0], _sine(1000, 2400))


def test_load_resamples_44k1_to_48k(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, _sine(1000.0, 44100, fs=44100), 44100, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.shape == (2, 48000)  # 1 s stays 1 s
    spectrum = np.abs(np.fft.rfft(audio[0]))  # 1 Hz bins
    assert int(np.argmax(spectrum)) == 1000
    mid = audio[0, 2000:-2000]  # away from the filter's edge effects
    np.testing.assert_allclose(mid, _sine(1000.0, 48000)[2000:-2000], atol=2e-3)


def test_load_rejects_three_channels(tmp_path):
    path = tmp_path / "surround.wav"
    sf.write(path, np.zeros((100, 3), np.float32), FS)
    with pytest.raises(AudioError, match=r"surround\.wav.*3 channels.*mono or stereo"):
        load_audio(path)


def test_load_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match=r"nowhere\.wav.*not found"):
        load_audio(path)


def test_load_unreadable_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioError, match=r"garbage\.wav.*cannot be read"):
        load_audio(path)


def test_load_empty_and_nonfinite(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), FS)
    with pytest.raises(AudioError, match=r"empty\.wav.*no samples"):
        load_audio(empty)
    bad = tmp_path / "nan.wav"
    data = np.zeros((100, 2), np.float32)
    data[10, 1] = np.nan
    sf.write(bad, data, FS, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        load_audio(bad)


# ---------------------------------------------------------------- pad_pair


def test_pad_pair_splits_padding():
    ref = np.ones((2, 10), np.float32)
    coded = np.full((2, 5), 2.0, np.float32)
    r, c = pad_pair(ref, coded)
    assert r.shape == c.shape == (2, 10)
    assert r is ref
    np.testing.assert_array_equal(c[:, :2], 0)  # 5 missing: 2 before ...
    np.testing.assert_array_equal(c[:, 2:7], 2)
    np.testing.assert_array_equal(c[:, 7:], 0)  # ... 3 after
    c2, r2 = pad_pair(coded[:, :4], ref)  # either argument may be the shorter one
    assert c2.shape == r2.shape == (2, 10)
    np.testing.assert_array_equal(c2[:, 3:7], 2)
    np.testing.assert_array_equal(c2[:, :3], 0)
    np.testing.assert_array_equal(c2[:, 7:], 0)


# ---------------------------------------------------------------- frontend: reference checks


def test_weights_match_gammatone_fft_weights(frontend):
    """The weight matrix against the gammatone package's ``fft_weights`` (Slaney ERB filters).

    ``fft_weights`` gives the magnitude response ``|H|`` of each filter at the bins of an
    ``nfft``-point FFT (bands ordered low → high, unit gain at the centre). The frontend's weights
    are ``|H|^2`` (they act on the power spectrum) times two documented factors: 2 for the
    interior bins of the one-sided spectrum, and ``1 / (n_fft * win_length)`` (Parseval, then the
    mean over the frame). Undo those and the two must agree to float32 precision.
    """
    fftweight = pytest.importorskip("gammatone.fftweight")
    filters = pytest.importorskip("gammatone.filters")
    n_bins = frontend.n_fft // 2 + 1
    ref_weights, _ = fftweight.fft_weights(frontend.n_fft, FS, 32, 1, 50.0, FS / 2, n_bins)
    expected = ref_weights**2
    mine = frontend.weights.double().numpy() * frontend.n_fft * frontend.win_length
    mine[:, 1:-1] /= 2.0
    assert mine.shape == expected.shape == (32, 2049)
    assert np.abs(mine - expected).max() < 1e-5 * expected.max()
    assert np.corrcoef(mine.ravel(), expected.ravel())[0, 1] > 0.99999
    cf_ref = filters.centre_freqs(FS, 32, 50.0)[::-1]
    np.testing.assert_allclose(frontend.center_frequencies.numpy(), cf_ref, rtol=1e-6)
    # Sanity: each filter peaks near its own centre and has unit gain there.
    peaks = np.argmax(expected, axis=1) * FS / frontend.n_fft
    assert np.all(np.abs(peaks - cf_ref) <= FS / frontend.n_fft)


def test_magnitudes_match_per_frame_iir_filterbank(frontend):
    """Band RMS against ViSQOL's own procedure run with the gammatone package's IIR filterbank.

    ViSQOL: frame → symmetric Hann window → Slaney ERB filterbank (state reset per frame) → RMS
    over the frame's samples. The FFT path differs only in the filter tails cut off at the frame
    end (and wrapped circularly), which matters for the lowest (longest-ringing) bands.
    """
    filters = pytest.importorskip("gammatone.filters")
    n = frontend.win_length + 4 * frontend.hop_length
    rng = np.random.default_rng(1)
    x = 0.2 * np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    x += 0.1 * np.sin(2 * np.pi * 440.0 * np.arange(n) / FS)
    coefs = np.flipud(filters.make_erb_filters(FS, filters.centre_freqs(FS, 32, 50.0)))
    window = np.hanning(frontend.win_length)
    expected = np.stack(
        [
            np.sqrt(
                np.mean(
                    filters.erb_filterbank(
                        x[t * frontend.hop_length : t * frontend.hop_length + len(window)] * window,
                        coefs,
                    )
                    ** 2,
                    axis=1,
                )
            )
            for t in range(frontend.num_frames(n))
        ],
        axis=1,
    )  # [32, T]
    audio = torch.tensor(np.stack([x, x]), dtype=torch.float32)
    mine = frontend.band_energies(audio)[0].sqrt().double().numpy()  # view L
    assert mine.shape == expected.shape == (32, 5)
    rel = np.abs(mine - expected) / expected
    assert rel[8:].max() < 1e-3  # bands ≥ ~500 Hz: the same numbers
    assert rel.max() < 0.1  # lowest bands: filter tails
    corr = np.corrcoef(np.log10(mine).ravel(), np.log10(expected).ravel())[0, 1]
    assert corr > 0.9999


def test_level_reference(frontend):
    """A full-scale sine at a band centre has band mean square 3/16 (10·log10 RMS: −3.63)."""
    band = 20
    cf = float(frontend.center_frequencies[band])
    x = torch.from_numpy(_sine(cf, FS, amp=1.0))
    energy = frontend.band_energies(torch.stack([x, x]))[0, band, 2:-2]
    torch.testing.assert_close(energy, torch.full_like(energy, 3 / 16), rtol=0.01, atol=0)
    level = (
        frontend.spectrogram(torch.stack([x, x]))[0, band, 2:-2]
        + frontend.settings()["abs_floor_db"]
    )
    expected = 10 * math.log10(math.sqrt(3 / 16))
    torch.testing.assert_close(level, torch.full_like(level, expected), atol=0.02, rtol=0)


# ---------------------------------------------------------------- frontend: properties


def test_geometry_and_settings(frontend):
    assert (frontend.win_length, frontend.hop_length, frontend.n_fft) == (3840, 960, 4096)
    assert frontend.center_frequencies.shape == (32,)
    assert float(frontend.center_frequencies[0]) == pytest.approx(50.0)
    assert torch.all(torch.diff(frontend.center_frequencies) > 0)
    settings = frontend.settings()
    assert settings["sample_rate"] == FS and settings["num_bands"] == 32
    assert GammatoneFrontend(**settings).settings() == settings
    assert [frontend.num_frames(n) for n in (0, 100, 3840, 4799, 4800, 48000)] == [
        1,
        1,
        1,
        1,
        2,
        47,
    ]


@pytest.mark.parametrize("n", [100, 3840, 3841, 4800, 10_000])
def test_output_shapes(frontend, n):
    audio = _noise(n, seed=n)
    spec = frontend.spectrogram(audio)
    assert spec.shape == (4, 32, frontend.num_frames(n))
    assert spec.dtype == torch.float32
    batched = frontend.spectrogram(torch.stack([audio, audio, audio]))
    assert batched.shape == (3, 4, 32, frontend.num_frames(n))
    pair = frontend(audio[None], 0.5 * audio[None])
    assert pair.shape == (1, 4, 2, 32, frontend.num_frames(n))


def test_forward_stacks_reference_and_coded(frontend):
    ref = torch.stack([_noise(6000, 1), _noise(6000, 2)])
    coded = torch.stack([_noise(6000, 3), _noise(6000, 4)])
    out = frontend(ref, coded)
    expected = torch.stack([frontend.spectrogram(ref), frontend.spectrogram(coded)], dim=2)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="same shape"):
        frontend(ref, coded[..., :-1])


def test_silence_is_exactly_zero(frontend):
    spec = frontend.spectrogram(torch.zeros(2, 2, 9000))
    assert torch.equal(spec, torch.zeros_like(spec))


def test_floors_hold(frontend):
    rel = frontend.settings()["rel_floor_db"]
    audio = torch.stack([torch.from_numpy(_sine(1000.0, 12000, amp=0.9)), _noise(12000, 5, 1)[0]])
    spec = frontend.spectrogram(audio)
    assert spec.min() >= 0
    assert (spec.amax(dim=-2) - spec.amin(dim=-2)).max() <= rel + 1e-4
    # With the ViSQOL defaults a band would need RMS > 1 for the relative floor to rise above the
    # absolute one; a 20 dB relative floor shows that it bites.
    narrow = GammatoneFrontend(rel_floor_db=20.0)
    spec = narrow.spectrogram(audio)
    frame_range = spec.amax(dim=-2) - spec.amin(dim=-2)
    assert frame_range.max() <= 20.0 + 1e-4
    torch.testing.assert_close(frame_range[0], torch.full_like(frame_range[0], 20.0))  # tone
    assert spec.min() >= 0
    quiet = frontend.spectrogram(1e-9 * _noise(6000, 6))  # far below the absolute floor
    assert torch.equal(quiet, torch.zeros_like(quiet))


def test_mid_side_views_match_direct_computation(frontend):
    left, right = _noise(8000, 7, 1)[0], 0.3 * _noise(8000, 8, 1)[0]
    right = right + 0.5 * left
    spec = frontend.spectrogram(torch.stack([left, right]))
    direct = frontend.spectrogram(torch.stack([(left + right) / 2, (left - right) / 2]))
    torch.testing.assert_close(spec[2], direct[0], atol=2e-3, rtol=0)  # M
    torch.testing.assert_close(spec[3], direct[1], atol=2e-3, rtol=0)  # S


def test_dual_mono_side_is_floor(frontend):
    x = _noise(7000, 9, 1)[0]
    spec = frontend.spectrogram(torch.stack([x, x]))
    assert torch.equal(spec[3], torch.zeros_like(spec[3]))
    torch.testing.assert_close(spec[2], spec[0])  # M = L
    torch.testing.assert_close(spec[1], spec[0])


def test_near_mono_side_is_accurate(frontend):
    """S of a stereo pair with tiny differences must not drown in float32 rounding."""
    x = _noise(9000, 10, 1, scale=0.3)[0]
    diff = 1e-4 * _noise(9000, 11, 1)[0]
    spec = frontend.spectrogram(torch.stack([x + diff, x - diff]))
    direct = frontend.spectrogram(torch.stack([x, diff]))
    torch.testing.assert_close(spec[3], direct[1], atol=1e-2, rtol=0)


def test_batch_equals_items(frontend):
    items = [_noise(7000, 20 + i) for i in range(3)]
    batched = frontend.spectrogram(torch.stack(items))
    for i, item in enumerate(items):
        torch.testing.assert_close(batched[i], frontend.spectrogram(item), atol=1e-4, rtol=0)


@pytest.mark.parametrize("block", [1, 3, 5])
def test_cpu_blocks_equal_one_call(block):
    audio = torch.stack([_noise(10_000, 40 + i) for i in range(3)])
    short = audio[..., :5000]  # 2 frames per item: blocks then span several items
    one_call = GammatoneFrontend()
    one_call.cpu_block_frames = 10**9
    blocked = GammatoneFrontend()
    blocked.cpu_block_frames = block
    for x in (audio, short):
        torch.testing.assert_close(
            blocked.band_energies(x), one_call.band_energies(x), rtol=1e-5, atol=1e-12
        )


def test_tone_peaks_in_nearest_band(frontend):
    x = torch.from_numpy(_sine(1000.0, 12000))
    spec = frontend.spectrogram(torch.stack([x, x]))
    nearest = int(torch.argmin((frontend.center_frequencies - 1000.0).abs()))
    assert torch.all(spec[0].argmax(dim=0) == nearest)


def test_gradients_flow(frontend):
    audio = _noise(5000, 12).requires_grad_(True)
    frontend.spectrogram(audio).sum().backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all()
    with torch.no_grad():
        fast = frontend.band_energies(audio)
    torch.testing.assert_close(frontend.band_energies(audio).detach(), fast)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(frontend):
    audio = torch.stack([_noise(30000, 30), _noise(30000, 31)])
    cpu = frontend.spectrogram(audio)
    gpu_frontend = GammatoneFrontend().cuda()
    gpu = gpu_frontend.spectrogram(audio.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)
    moved = frontend.spectrogram(audio.cuda())  # CPU module, CUDA input: follows the input
    torch.testing.assert_close(moved.cpu(), cpu, atol=1e-3, rtol=0)

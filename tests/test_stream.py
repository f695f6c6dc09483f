"""Tests for gml.features.stream: blockwise reading, resampling and framing of long audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from gml.features import (
    AudioError,
    AudioInfo,
    GammatoneFrontend,
    audio_info,
    load_audio,
    streamed_spectrogram,
)
from gml.features.stream import _BlockResampler, _Framer

FS = 48000
WIN, HOP = 3840, 960  # the frontend's defaults at 48 kHz


@pytest.fixture(scope="module")
def frontend() -> GammatoneFrontend:
    return GammatoneFrontend()


def _audio(n: int, channels: int, rate: int, seed: int = 0) -> np.ndarray:
    """Noise plus a tone, ``[n, channels]`` float32 (soundfile's layout)."""
    rng = np.random.default_rng(seed)
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(n) / rate)
    data = tone[:, None] + 0.1 * rng.standard_normal((n, channels))
    return data.astype(np.float32)


def _write(path, data: np.ndarray, rate: int):
    sf.write(path, data, rate, subtype="FLOAT")  # float WAV: read back bit-exactly
    return path


def _whole(path, frontend: GammatoneFrontend) -> torch.Tensor:
    """The reference: the whole file through load_audio and the frontend."""
    return frontend.spectrogram(torch.from_numpy(load_audio(path, FS)))


def _assert_same(streamed: torch.Tensor, whole: torch.Tensor) -> None:
    assert streamed.dtype == torch.float32 and streamed.device.type == "cpu"
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- equality with the whole file


@pytest.mark.parametrize("rate", [48000, 44100, 16000, 32000])
@pytest.mark.parametrize("channels", [1, 2])
def test_equals_whole_file(tmp_path, frontend, rate, channels):
    n = int(2.3 * rate) + 7  # many 0.5 s blocks, and a length that is no multiple of anything
    path = _write(tmp_path / "a.wav", _audio(n, channels, rate), rate)
    spec, info = streamed_spectrogram(path, frontend, block_seconds=0.5)
    whole = _whole(path, frontend)
    _assert_same(spec, whole)
    assert spec.shape[-1] == frontend.num_frames(-(-n * FS // rate))
    assert info == AudioInfo(str(path), rate, channels, n)


@pytest.mark.parametrize("rate", [48000, 44100])
def test_blocks_shorter_than_a_frame(tmp_path, frontend, rate):
    path = _write(tmp_path / "a.wav", _audio(rate, 2, rate), rate)
    spec, _ = streamed_spectrogram(path, frontend, block_seconds=0.013)  # 624 samples < hop
    _assert_same(spec, _whole(path, frontend))


@pytest.mark.parametrize(
    ("rate", "n"),
    [
        (48000, WIN),
        (48000, WIN + HOP - 1),
        (48000, WIN + HOP),
        (16000, 1280),  # exactly one window at 48 kHz
    ],
)
def test_short_files(tmp_path, frontend, rate, n):
    path = _write(tmp_path / "short.wav", _audio(n, 2, rate), rate)
    spec, info = streamed_spectrogram(path, frontend, block_seconds=0.01)
    _assert_same(spec, _whole(path, frontend))
    assert info.samples == n


@pytest.mark.parametrize(("rate", "n"), [(48000, 1), (48000, 1000), (44100, 1000), (16000, 1279)])
def test_files_shorter_than_one_frame_are_refused(tmp_path, frontend, rate, n):
    path = _write(tmp_path / "short.wav", _audio(n, 2, rate), rate)
    with pytest.raises(AudioError, match=r"short\.wav: lasts .* shorter than one 80 ms"):
        streamed_spectrogram(path, frontend)


def test_block_resampler_equals_resample_poly():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 20011)).astype(np.float32)
    for up, down in [(160, 147), (3, 1), (1, 2), (640, 147)]:
        resampler = _BlockResampler(up, down, channels=2)
        pieces, i = [], 0
        while i < x.shape[1]:  # uneven blocks, some shorter than the filter
            k = int(rng.integers(1, 2500))
            pieces.append(resampler.push(x[:, i : i + k]))
            i += k
        pieces.append(resampler.finish())
        whole = resample_poly(x.astype(np.float64), up, down, axis=-1).astype(np.float32)
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("expected", [0, 3, 1000])
def test_framer_survives_a_wrong_header_length(frontend, expected):
    audio = _audio(FS, 2, FS).T.copy()
    framer = _Framer(frontend, expected_frames=expected)  # the truth is num_frames(FS) = 47
    for start in range(0, FS, 5000):
        framer.push(audio[:, start : start + 5000])
    _assert_same(framer.finish(), frontend.spectrogram(torch.from_numpy(audio)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_frontend(tmp_path):
    path = _write(tmp_path / "a.wav", _audio(int(2.3 * 44100), 2, 44100), 44100)
    cpu = GammatoneFrontend()
    spec, _ = streamed_spectrogram(path, GammatoneFrontend().cuda(), block_seconds=0.5)
    assert spec.device.type == "cpu"
    torch.testing.assert_close(spec, _whole(path, cpu), rtol=0, atol=1e-3)


# ---------------------------------------------------------------- in-memory arrays


def test_arrays_equal_file(tmp_path, frontend):
    rate, n = 44100, 44100 + 123
    stereo = _audio(n, 2, rate)  # [n, 2]
    mono = _audio(n, 1, rate, seed=1)[:, 0]
    ref_stereo, _ = streamed_spectrogram(_write(tmp_path / "s.wav", stereo, rate), frontend, 0.5)
    ref_mono, _ = streamed_spectrogram(_write(tmp_path / "m.wav", mono, rate), frontend, 0.5)
    cases = [
        (stereo.T, ref_stereo, 2),  # channels-first
        (stereo, ref_stereo, 2),  # channels-last
        (torch.from_numpy(stereo.T.copy()), ref_stereo, 2),
        (stereo.T.astype(np.float64), ref_stereo, 2),
        (mono, ref_mono, 1),
        (mono[None, :], ref_mono, 1),
        (mono[:, None], ref_mono, 1),
        (torch.from_numpy(mono), ref_mono, 1),
    ]
    for array, ref, channels in cases:
        spec, info = streamed_spectrogram((array, rate), frontend, block_seconds=0.5)
        torch.testing.assert_close(spec, ref, rtol=0, atol=1e-4)
        assert info == AudioInfo("<array>", rate, channels, n)
        assert audio_info((array, rate)) == info


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((3, 1000), np.float32),
        np.zeros((1000, 3), np.float32),
        np.zeros((2, 2, 1000), np.float32),
        np.zeros((), np.float32),
    ],
)
def test_array_shape_errors(frontend, array):
    with pytest.raises(AudioError, match=r"<array>.*shape.*expects \[n\] \(mono\)"):
        streamed_spectrogram((array, FS), frontend)


def test_array_other_errors(frontend):
    with pytest.raises(AudioError, match=r"<array>.*int16.*floating-point"):
        streamed_spectrogram((np.zeros((2, 1000), np.int16), FS), frontend)
    with pytest.raises(AudioError, match=r"<array>.*no samples"):
        streamed_spectrogram((np.zeros((2, 0), np.float32), FS), frontend)
    with pytest.raises(AudioError, match=r"<array>.*sample rate"):
        streamed_spectrogram((np.zeros((2, 1000), np.float32), 0), frontend)
    bad = np.zeros((2, FS), np.float32)
    bad[1, 30000] = np.inf
    with pytest.raises(AudioError, match=r"<array>.*NaN or infinite"):
        streamed_spectrogram((bad, FS), frontend, block_seconds=0.5)


# ---------------------------------------------------------------- info and errors


def test_audio_info_reads_the_header(tmp_path):
    path = _write(tmp_path / "cd.wav", _audio(44100 + 50, 1, 44100), 44100)
    info = audio_info(path)
    assert info == AudioInfo(str(path), 44100, 1, 44150)
    assert info.duration == pytest.approx(44150 / 44100)


def test_missing_and_unreadable(tmp_path, frontend):
    missing = tmp_path / "nowhere.wav"
    for call in (audio_info, lambda p: streamed_spectrogram(p, frontend)):
        with pytest.raises(AudioError, match=r"nowhere\.wav.*not found"):
            call(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioError, match=r"garbage\.wav.*cannot be read"):
        streamed_spectrogram(garbage, frontend)


def test_three_channels_and_empty(tmp_path, frontend):
    surround = tmp_path / "surround.wav"
    sf.write(surround, np.zeros((100, 3), np.float32), FS)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), FS)
    for call in (audio_info, lambda p: streamed_spectrogram(p, frontend)):
        with pytest.raises(AudioError, match=r"surround\.wav.*3 channels.*mono or stereo"):
            call(surround)
        with pytest.raises(AudioError, match=r"empty\.wav.*no samples"):
            call(empty)


def test_nan_in_second_block(tmp_path, frontend):
    data = _audio(FS, 2, FS)
    data[int(0.7 * FS), 0] = np.nan  # the first 0.5 s block is clean
    path = _write(tmp_path / "nan.wav", data, FS)
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        streamed_spectrogram(path, frontend, block_seconds=0.5)


def test_bad_arguments(tmp_path, frontend):
    path = _write(tmp_path / "a.wav", _audio(1000, 2, FS), FS)
    with pytest.raises(ValueError, match="block_seconds"):
        streamed_spectrogram(path, frontend, block_seconds=0)
    with pytest.raises(TypeError, match="path or a"):
        streamed_spectrogram(123, frontend)


# ---------------------------------------------------------------- a file decoded once


def test_decoded_file_reads_like_the_file(tmp_path, frontend):
    from gml.features import DecodedFile, decode_short_file
    from gml.features.delay import estimate_delay

    ref = _write(tmp_path / "ref.wav", _audio(int(1.3 * FS), 2, FS), FS)
    cod = _write(tmp_path / "cod.wav", _audio(int(1.2 * FS), 1, 44100, seed=1), 44100)
    for path in (ref, cod):
        decoded = decode_short_file(path, max_seconds=2.0)
        assert isinstance(decoded, DecodedFile)
        assert audio_info(decoded) == audio_info(path)  # the file's name and length
        for block_seconds, skip in ((60.0, 0), (0.25, 1234)):  # one block, and many
            got, info = streamed_spectrogram(decoded, frontend, block_seconds, skip)
            want, want_info = streamed_spectrogram(path, frontend, block_seconds, skip)
            assert info == want_info
            assert torch.equal(got, want)  # the same samples in the same order: bit-exact
    decoded = [decode_short_file(p, 2.0) for p in (ref, cod)]
    assert estimate_delay(*decoded) == estimate_delay(ref, cod)
    # longer files and arrays are given back as they are
    assert decode_short_file(ref, max_seconds=1.0) == ref
    array = (np.zeros(100, np.float32), FS)
    assert decode_short_file(array, 2.0) is array


def test_decoded_file_errors_name_the_file(tmp_path, frontend):
    from gml.features.stream import decode_short_file

    with pytest.raises(AudioError, match=r"nowhere\.wav.*not found"):
        decode_short_file(tmp_path / "nowhere.wav", 60.0)
    data = _audio(FS, 2, FS)
    data[int(0.7 * FS), 0] = np.nan
    decoded = decode_short_file(_write(tmp_path / "nan.wav", data, FS), 60.0)
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        streamed_spectrogram(decoded, frontend)

"""Audio input for the gml frontend: reading, channel policy, resampling and padding.

Every array returned here is channels-first float32 ``[2, n]`` at the requested sample rate
(48 kHz by default), which is what :class:`gml.features.GammatoneFrontend` consumes.
"""

from __future__ import annotations

import math
import os

import numpy as np
import soundfile as sf

from gml.errors import GMLError

__all__ = ["AudioError", "conform_audio", "load_audio", "read_audio"]


class AudioError(GMLError, ValueError):
    """An audio file that gml cannot use.

    The message always starts with the file path and says what was expected, e.g.
    ``"mix.wav: has 6 channels; gml expects mono or stereo"``.
    """


def load_audio(path: str | os.PathLike, sample_rate: int = 48000) -> np.ndarray:
    """Read an audio file as channels-first float32 stereo at ``sample_rate``.

    Any format that soundfile (libsndfile) reads is accepted (WAV, FLAC, OGG, AIFF, ...).
    Integer PCM is scaled to [-1, 1) by soundfile. Mono files are duplicated to dual mono
    (L = R); stereo and binaural files are kept as they are. Files at another sample rate are
    resampled with :func:`scipy.signal.resample_poly`, using the reduced fraction
    ``sample_rate / file_rate`` (both divided by their gcd) as up/down factors.

    Args:
        path: The audio file.
        sample_rate: Target sample rate in Hz.

    Returns:
        The signal, float32, C-contiguous.

    Shape:
        - Output: ``[2, n]`` (channels L, R; n samples at ``sample_rate``).

    Raises:
        AudioError: The file is missing or unreadable (soundfile's reason is included), has no
            samples, has more than two channels, or contains NaN/inf samples.
        ValueError: ``sample_rate`` is not a positive integer.
    """
    sample_rate = check_sample_rate(sample_rate)
    data, file_rate = read_audio(path)
    return conform_audio(data, file_rate, sample_rate)


def read_audio(path: str | os.PathLike, integers_at: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as it is (float32, the file's own rate and channels), checked as
    :func:`load_audio` checks it.

    Args:
        path: The audio file.
        integers_at: If given, a 16-bit PCM file at this rate is returned as its stored
            ``int16`` samples instead (4x cheaper to decode, half the bytes); soundfile's
            floats are exactly these integers / 32768.

    Returns:
        ``(samples, file_rate)``; samples are float32, or int16 as just said.

    Shape:
        - samples: ``[n, channels]`` (soundfile's layout; 1 or 2 channels).

    Raises:
        AudioError: As :func:`load_audio`.
    """
    name = os.fspath(path)
    check_exists(name)
    try:
        with sf.SoundFile(name) as f:
            check_layout(name, f.channels, f.frames)
            pcm16 = f.subtype == "PCM_16" and f.samplerate == integers_at
            data = f.read(dtype="int16" if pcm16 else "float32", always_2d=True)
            file_rate = f.samplerate
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise unreadable_error(name, err) from err
    num_samples, num_channels = data.shape
    check_layout(name, num_channels, num_samples)
    if not pcm16:  # integers are always finite
        check_finite(name, data)
    return data, int(file_rate)


def conform_audio(data: np.ndarray, file_rate: int, sample_rate: int = 48000) -> np.ndarray:
    """The output of :func:`load_audio` from samples as :func:`read_audio` returns them:
    resampled to ``sample_rate`` (the same polyphase filter), mono duplicated to L = R.

    Shape:
        - data: ``[n, channels]`` → ``[2, m]`` float32, C-contiguous.
    """
    audio = data.T  # [channels, n]
    if file_rate != sample_rate:
        up, down = resample_factors(int(file_rate), sample_rate)
        # scipy.signal takes a noticeable part of start-up, and most files need no resampling
        from scipy.signal import resample_poly

        audio = resample_poly(audio.astype(np.float64), up, down, axis=-1)
    if audio.shape[0] == 1:
        audio = np.concatenate([audio, audio], axis=0)
    return np.ascontiguousarray(audio, dtype=np.float32)


# ------------------------------------------------------------------ checks shared with stream.py
# The messages below are part of the interface (tests and users match on them); each starts with
# the source's name and says what gml expects.


def check_sample_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` as an int; raise ValueError unless it is a positive integer."""
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def check_exists(name: str) -> None:
    """Raise :class:`AudioError` if the file ``name`` does not exist."""
    if not os.path.exists(name):
        raise AudioError(f"{name}: file not found; gml expects an existing audio file")


def unreadable_error(name: str, err: Exception) -> AudioError:
    """The error for a file that soundfile cannot open or decode (``err`` is its reason)."""
    return AudioError(
        f"{name}: cannot be read as audio ({err}); gml expects a file that soundfile reads"
    )


def check_layout(name: str, num_channels: int, num_samples: int) -> None:
    """Raise :class:`AudioError` for more than two channels or an empty signal."""
    if num_channels > 2:
        raise AudioError(f"{name}: has {num_channels} channels; gml expects mono or stereo")
    if num_samples == 0 or num_channels == 0:
        raise AudioError(f"{name}: has no samples; gml expects a non-empty signal")


def check_duration(name: str, seconds: float, min_seconds: float) -> None:
    """Raise :class:`AudioError` for a signal shorter than one analysis frame: its features
    would be padding (a truncated file gave all-zero features and a nonsense score)."""
    if seconds < min_seconds:
        raise AudioError(
            f"{name}: lasts {1000 * seconds:.1f} ms, shorter than one {1000 * min_seconds:.0f} ms "
            "analysis frame; gml expects at least one frame of audio (is the file truncated?)"
        )


def check_finite(name: str, data: np.ndarray) -> None:
    """Raise :class:`AudioError` if ``data`` holds a NaN or infinite sample."""
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: contains NaN or infinite samples; gml expects finite audio")


def resample_factors(file_rate: int, sample_rate: int) -> tuple[int, int]:
    """Up/down factors of :func:`~scipy.signal.resample_poly` from ``file_rate`` to
    ``sample_rate``: the fraction ``sample_rate / file_rate`` reduced by the gcd."""
    g = math.gcd(file_rate, sample_rate)
    return sample_rate // g, file_rate // g

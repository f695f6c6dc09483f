"""Gammatone spectrograms of long audio with memory bounded by a block size, not the file length.

:func:`streamed_spectrogram` reads a file (or walks an in-memory array) block by block, resamples
each block to the frontend's rate and turns it into spectrogram frames, carrying just enough
samples across block boundaries that the result equals, to float rounding,
``frontend.spectrogram(torch.from_numpy(load_audio(path, rate)))``. The channel policy and the
checks are those of :func:`gml.features.load_audio`, with the same error messages.

**Why blockwise resampling is exact.** :func:`scipy.signal.resample_poly` applies a linear-phase
FIR of ``2 * half + 1`` taps at the upsampled rate (``half = 10 * max(up, down)``), treating the
signal as zero outside its ends, so output sample ``m`` depends only on the input samples ``j``
with ``|j * up - m * down| <= half``. A segment that starts at an input index that is a multiple
of ``down`` maps onto the whole-signal output with an integer shift, so resampling a segment
with at least ``half / up`` input samples of context on each side, and keeping only the outputs
whose support lies inside the segment, reproduces the whole-signal output; the whole-signal
output has ``ceil(n * up / down)`` samples.

**Why blockwise framing is exact.** Frame ``t`` covers samples ``[t * hop, t * hop + win)`` and is
computed on its own (per-frame floors included), so every block emits the frames that fit in
its samples and keeps the samples from the next frame's start on (fewer than ``win``).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import soundfile as sf
import torch

from gml.features.audio import (
    AudioError,
    check_duration,
    check_exists,
    check_finite,
    check_layout,
    resample_factors,
    unreadable_error,
)
from gml.features.gammatone import GammatoneFrontend

__all__ = [
    "AudioInfo",
    "AudioSource",
    "DecodedFile",
    "audio_info",
    "decode_short_file",
    "open_source",
    "streamed_spectrogram",
]

_ARRAY_NAME = "<array>"
_ARRAY_SHAPES = "[n] (mono), [channels, n] or [n, channels] with 1 or 2 channels"


@dataclass(frozen=True)
class AudioInfo:
    """What a source holds, before any resampling or channel duplication.

    Attributes:
        source: The file path, or ``"<array>"`` for in-memory audio.
        sample_rate: The original sample rate in Hz.
        channels: The original channel count (1 or 2).
        samples: The original length in samples (per channel).
    """

    source: str
    sample_rate: int
    channels: int
    samples: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples / self.sample_rate


@dataclass(frozen=True, eq=False)
class DecodedFile:
    """A file decoded whole into memory that reads like the file itself.

    Anything that takes an :data:`AudioSource` path takes it too (:func:`audio_info`,
    :func:`streamed_spectrogram`, :func:`gml.features.delay.estimate_delay`) and gives the same
    result as the path, with the same error messages naming the file, without decoding it
    again: the delay search and the features of a pair read each file once
    (:func:`decode_short_file`).

    Attributes:
        info: The file's :class:`AudioInfo` (its length as actually read).
        samples: The decoded samples, float32, as soundfile gives them.
        version: The file's ``(st_mtime_ns, st_size)`` taken before it was read (None if
            that failed), for caches keyed on it: a later ``os.stat`` may see a newer file
            than the one decoded.

    Shape:
        samples: ``[channels, n]`` (a transposed view of soundfile's ``[n, channels]``).
    """

    info: AudioInfo
    samples: np.ndarray
    version: tuple[int, int] | None


#: A path, or ``(samples, sample_rate)`` with samples ``[n]``, ``[channels, n]`` or
#: ``[n, channels]`` (numpy array or torch tensor, floating point, in [-1, 1]), or a
#: :class:`DecodedFile` (a path's content already decoded).
AudioSource = str | os.PathLike | tuple[np.ndarray | torch.Tensor, int] | DecodedFile


def audio_info(source: AudioSource) -> AudioInfo:
    """Sample rate, channel count and length of a file (header only) or an array.

    For a path, no samples are read: the file must exist, be readable by soundfile, have one or
    two channels and be non-empty. For an array, its dtype, shape and rate are checked (its
    samples are checked for NaN/inf only when it is streamed).

    Args:
        source: A path, or ``(samples, sample_rate)`` (see :data:`AudioSource`).

    Returns:
        The source's :class:`AudioInfo`.

    Raises:
        AudioError: As :func:`gml.features.load_audio` (missing, unreadable, more than two
            channels, empty), or an array of another shape or an integer dtype; the message
            starts with the path (``"<array>"`` for arrays) and says what was expected.
    """
    reader = open_source(source)
    reader.close()
    return reader.info


def decode_short_file(source: AudioSource, max_seconds: float) -> AudioSource:
    """A file of at most ``max_seconds`` decoded into memory (:class:`DecodedFile`), so that
    several readers share one decoding; any other source (a longer file, an array) as given.

    Raises:
        AudioError: As :func:`audio_info` and, for a file that is decoded, as
            :func:`streamed_spectrogram` when it cannot be decoded part-way.
    """
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = os.fspath(source)
    try:  # before reading: a file rewritten meanwhile then has a newer version than this
        st = os.stat(path)
        version = (st.st_mtime_ns, st.st_size)
    except OSError:
        version = None  # the reader reports a missing file
    with _FileReader(path) as reader:
        if reader.info.duration > max_seconds:
            return source
        # one block holds the file unless its header undercounts the frames
        blocks = list(reader.blocks(max(1, reader.info.samples)))
        info = reader.info  # after reading: the length actually read
    samples = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    return DecodedFile(info, samples, version)


def streamed_spectrogram(
    source: AudioSource,
    frontend: GammatoneFrontend,
    block_seconds: float = 60.0,
    skip_samples: int = 0,
) -> tuple[torch.Tensor, AudioInfo]:
    """Gammatone spectrogram of a file or array, read and resampled block by block.

    Equal, to float rounding, to
    ``frontend.spectrogram(torch.from_numpy(load_audio(path, frontend.settings()["sample_rate"])))``
    (mono becomes dual mono, other rates are resampled with the same polyphase filter), while
    the memory used is bounded by ``block_seconds`` of audio plus the output spectrogram
    (``4 * num_bands * 4`` bytes per frame: 15 MiB for 10 minutes at the defaults). The working
    memory is about 1.5 MiB per block second for 48 kHz stereo and 3 MiB for 44.1 kHz stereo
    (resampling runs in float64, as in :func:`~gml.features.load_audio`). Each block's frames are
    computed on the frontend's device and collected on the CPU.

    Integer arrays are rejected rather than scaled (their full scale is ambiguous); pass floats
    in [-1, 1], e.g. ``pcm16 / 32768``. Float arrays are converted to float32 block by block, as
    soundfile does for files.

    Args:
        source: A path, or ``(samples, sample_rate)`` (see :data:`AudioSource`).
        frontend: The gammatone frontend; its sample rate is the target rate.
        block_seconds: Audio read per block, in seconds of the source. Smaller blocks use less
            memory; below a second or so they only add per-call overhead.
        skip_samples: Samples (at the frontend's rate) dropped from the start before framing:
            compensates a codec's delay (see :func:`gml.features.delay.estimate_delay`).

    Returns:
        ``(spectrogram, info)``: the spectrogram, CPU float32, and the source's
        :class:`AudioInfo` (original rate, channels and length).

    Shape:
        - Output spectrogram: ``[4, num_bands, T]`` (views L, R, M, S),
          ``T = frontend.num_frames(ceil(samples * rate / sample_rate))``.

    Raises:
        AudioError: As :func:`audio_info`, or the signal is shorter than one analysis frame
            (80 ms), or a block contains NaN/inf samples, or the file cannot be decoded
            part-way; the message starts with the path.
        ValueError: ``block_seconds`` is not a positive finite number.
    """
    if not (math.isfinite(block_seconds) and block_seconds > 0):
        raise ValueError(f"block_seconds must be a positive number, got {block_seconds!r}")
    target_rate = int(frontend.settings()["sample_rate"])
    with open_source(source) as reader:
        rate, channels = reader.info.sample_rate, reader.info.channels
        block_len = max(1, round(block_seconds * rate))
        resampler = (
            _BlockResampler(*resample_factors(rate, target_rate), channels)
            if rate != target_rate
            else None
        )
        # resample_poly gives ceil(n * up / down) samples, i.e. ceil(n * target_rate / rate).
        samples = -(-reader.info.samples * target_rate // rate)
        check_duration(reader.info.source, samples / target_rate, frontend.win_length / target_rate)
        skip = max(0, int(skip_samples))
        framer = _Framer(frontend, frontend.num_frames(max(0, samples - skip)))

        def push(audio: np.ndarray) -> None:
            nonlocal skip
            if skip:  # drop the delay's samples as they arrive, block by block
                dropped = min(skip, audio.shape[1])
                audio, skip = audio[:, dropped:], skip - dropped
            framer.push(audio)

        for block in reader.blocks(block_len):
            check_finite(reader.info.source, block)
            push(resampler.push(block) if resampler is not None else block)
        if resampler is not None:
            push(resampler.finish())
        info = reader.info
    return framer.finish(), info


# ------------------------------------------------------------------ reading


class _Reader(ABC):
    """Blocks ``[channels, k]`` float32 of a source, with its :class:`AudioInfo`."""

    info: AudioInfo

    @abstractmethod
    def blocks(self, block_len: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of at most ``block_len`` samples."""

    def close(self) -> None:  # noqa: B027 - only file readers hold something to close
        """Release what the reader holds (nothing for arrays)."""

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileReader(_Reader):
    def __init__(self, name: str) -> None:
        check_exists(name)
        try:
            self._file = sf.SoundFile(name)
        except (sf.SoundFileError, RuntimeError, OSError) as err:
            raise unreadable_error(name, err) from err
        f = self._file
        try:
            check_layout(name, f.channels, f.frames)
        except AudioError:
            f.close()
            raise
        self.info = AudioInfo(name, int(f.samplerate), int(f.channels), int(f.frames))

    def blocks(self, block_len: int) -> Iterator[np.ndarray]:
        name, total = self.info.source, 0
        while True:
            try:
                data = self._file.read(block_len, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, OSError) as err:
                raise unreadable_error(name, err) from err
            if len(data) == 0:
                break
            total += len(data)
            yield data.T  # [channels, k]
        if total == 0:
            check_layout(name, self.info.channels, 0)
        if total != self.info.samples:  # a header whose frame count is off: report what was read
            self.info = replace(self.info, samples=total)

    def close(self) -> None:
        self._file.close()


class _ArrayReader(_Reader):
    def __init__(self, samples: np.ndarray | torch.Tensor, sample_rate: object) -> None:
        name = _ARRAY_NAME
        if (
            isinstance(sample_rate, bool)
            or not isinstance(sample_rate, (int, float, np.integer, np.floating))
            or not sample_rate > 0
            or int(sample_rate) != sample_rate
        ):
            raise AudioError(
                f"{name}: has sample rate {sample_rate!r}; gml expects a positive integer in Hz"
            )
        if isinstance(samples, torch.Tensor):
            samples = samples.detach()
            if samples.is_floating_point() and samples.dtype not in _NUMPY_FLOATS:
                samples = samples.float()  # e.g. bfloat16, which numpy lacks
            samples = samples.cpu().numpy()
        elif not isinstance(samples, np.ndarray):
            raise AudioError(
                f"{name}: is a {type(samples).__name__}; gml expects a numpy array or torch "
                f"tensor of shape {_ARRAY_SHAPES}"
            )
        if not np.issubdtype(samples.dtype, np.floating):
            raise AudioError(
                f"{name}: has dtype {samples.dtype}; gml expects floating-point samples in "
                "[-1, 1] (scale integer PCM first, e.g. int16 / 32768)"
            )
        if samples.ndim == 1:
            samples = samples[None, :]
        elif samples.ndim == 2 and samples.shape[0] not in (1, 2) and samples.shape[1] in (1, 2):
            samples = samples.T  # channels-last (a view)
        elif samples.ndim != 2 or samples.shape[0] not in (1, 2):
            raise AudioError(
                f"{name}: has shape {list(samples.shape)}; gml expects {_ARRAY_SHAPES}"
            )
        check_layout(name, samples.shape[0], samples.shape[1])
        self._samples = samples  # [channels, n], possibly a strided view
        self.info = AudioInfo(name, int(sample_rate), samples.shape[0], samples.shape[1])

    def blocks(self, block_len: int) -> Iterator[np.ndarray]:
        for start in range(0, self.info.samples, block_len):
            block = self._samples[:, start : start + block_len]
            yield np.ascontiguousarray(block, dtype=np.float32)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


class _DecodedReader(_Reader):
    """The blocks a :class:`_FileReader` would give, from a :class:`DecodedFile`: views of
    the same float32 values in the same layout."""

    def __init__(self, decoded: DecodedFile) -> None:
        self.info = decoded.info
        self._samples = decoded.samples

    def blocks(self, block_len: int) -> Iterator[np.ndarray]:
        for start in range(0, self.info.samples, block_len):
            yield self._samples[:, start : start + block_len]


def open_source(source: AudioSource) -> _Reader:
    """A reader of ``source`` (a path, a ``(samples, rate)`` tuple or a :class:`DecodedFile`),
    for a ``with`` block."""
    if isinstance(source, DecodedFile):
        return _DecodedReader(source)
    if isinstance(source, tuple):
        if len(source) != 2:
            raise TypeError(
                f"an in-memory source must be (samples, sample_rate), got a tuple of {len(source)}"
            )
        return _ArrayReader(*source)
    if isinstance(source, (str, os.PathLike)):
        return _FileReader(os.fspath(source))
    raise TypeError(
        f"source must be a path or a (samples, sample_rate) tuple, got {type(source).__name__}"
    )


# ------------------------------------------------------------------ resampling and framing


class _BlockResampler:
    """:func:`scipy.signal.resample_poly` of a signal that arrives in consecutive blocks.

    Invariant: outputs for the inputs ``[0, done)`` have been returned, and the buffer holds
    the inputs from ``start`` on. Both are multiples of ``down`` (so a segment's output maps
    onto the whole-signal output by an integer shift), and ``start <= done - context`` or
    ``start == 0`` (so the filter's left tail is covered).
    """

    def __init__(self, up: int, down: int, channels: int) -> None:
        self.up, self.down = up, down
        # resample_poly's default filter reaches 10 * max(up, down) upsampled samples each side,
        # i.e. that / up input samples; +2 covers the rounding at both ends.
        self.context = 10 * max(up, down) // up + 2
        self.buffer = np.zeros((channels, 0), dtype=np.float32)
        self.start = 0
        self.done = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """Append input ``[channels, k]``; return the outputs that are now final."""
        self.buffer = np.concatenate([self.buffer, block], axis=1)
        end = self.start + self.buffer.shape[1]
        stop = (end - self.context) // self.down * self.down
        if stop <= self.done:
            return np.zeros((self.buffer.shape[0], 0), dtype=np.float32)
        out = self._resample(stop + self.context, self.done, stop)
        self.done = stop
        new_start = max(0, (stop - self.context) // self.down * self.down)
        # Copy, so that the big block this buffer was cut from can be freed.
        self.buffer = self.buffer[:, new_start - self.start :].copy()
        self.start = new_start
        return out

    def finish(self) -> np.ndarray:
        """The remaining outputs, up to ``ceil(n * up / down)`` for ``n`` inputs in all."""
        return self._resample(self.start + self.buffer.shape[1], self.done, None)

    def _resample(self, seg_end: int, first: int, last: int | None) -> np.ndarray:
        """Outputs for the inputs ``[first, last)`` from the buffered segment up to ``seg_end``."""
        segment = self.buffer[:, : seg_end - self.start].astype(np.float64)  # as load_audio
        # scipy.signal takes a noticeable part of start-up, and most files need no resampling
        from scipy.signal import resample_poly

        y = resample_poly(segment, self.up, self.down, axis=-1)
        offset = self.start * self.up // self.down
        lo = first * self.up // self.down - offset
        hi = None if last is None else last * self.up // self.down - offset
        return y[:, lo:hi].astype(np.float32)


class _Framer:
    """Turns consecutive audio blocks into spectrogram frames, carrying partial frames over."""

    def __init__(self, frontend: GammatoneFrontend, expected_frames: int) -> None:
        self.frontend = frontend
        self.win, self.hop = frontend.win_length, frontend.hop_length
        self.pending = np.zeros((2, 0), dtype=np.float32)  # samples from the next frame's start
        # Filled in place: collecting per-block pieces and concatenating them would hold the
        # output twice and scatter small tensors between the big per-block temporaries.
        self.out = torch.empty(4, frontend.num_bands, expected_frames)
        self.frames = 0
        self.extra: list[torch.Tensor] = []  # only if the header's length was short

    def push(self, audio: np.ndarray) -> None:
        """Add ``[1 or 2, k]`` samples at the frontend's rate; compute every frame they complete."""
        if audio.shape[1] == 0:
            return
        if audio.shape[0] == 1:
            audio = np.concatenate([audio, audio], axis=0)  # dual mono, as load_audio
        buffer = np.concatenate([self.pending, audio], axis=1)
        n = buffer.shape[1]
        if n < self.win:
            self.pending = buffer
            return
        frames = 1 + (n - self.win) // self.hop
        self._store(self._spectrogram(buffer[:, : (frames - 1) * self.hop + self.win]))
        self.pending = buffer[:, frames * self.hop :].copy()

    def finish(self) -> torch.Tensor:
        """All frames, ``[4, bands, T]``; a signal shorter than one window gives ``T = 1``."""
        if self.frames == 0 and not self.extra:  # shorter than one window: the frontend pads it
            self._store(self._spectrogram(self.pending))
        if self.extra:
            return torch.cat([self.out, *self.extra], dim=-1)
        if self.frames < self.out.shape[-1]:  # the header promised more samples than were read
            return self.out[..., : self.frames].clone()  # a copy frees the unused tail
        return self.out

    def _store(self, spec: torch.Tensor) -> None:
        room = self.out.shape[-1] - self.frames
        k = min(room, spec.shape[-1])
        self.out[..., self.frames : self.frames + k] = spec[..., :k]
        self.frames += k
        if k < spec.shape[-1]:
            self.extra.append(spec[..., k:])

    def _spectrogram(self, audio: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(audio)).to(self.frontend.window.device)
        with torch.no_grad():
            return self.frontend.spectrogram(x).cpu()

"""The aligned reference/coded pair, as training and scoring both build it.

One convention for everything between two analysed signals and the model's input:

- the delay's sign: positive when the coded signal lags; it is removed by dropping samples
  from the start of the later signal (:func:`delay_skips`);
- the padding: the shorter signal is zero-padded on both sides to the longer, the odd sample
  at the end (:func:`split_padding`; silence is 0 in the frontend's output, so padding frames
  equals padding the audio): :func:`pad_pair` for waveforms, :func:`pad_frames` for one
  spectrogram, :func:`stack_pair` for a pair and :func:`stack_pairs` for a batch by one
  gather;
- the input: ``[4, 2, bands, T]``, the reference first on the second axis;
- the length check: :func:`length_difference` against :data:`MAX_LENGTH_DIFFERENCE`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gml.features.device import values_on

__all__ = [
    "MAX_LENGTH_DIFFERENCE",
    "delay_skips",
    "describe_difference",
    "length_difference",
    "pad_frames",
    "pad_pair",
    "pair_frames",
    "split_padding",
    "stack_pair",
    "stack_pairs",
]

#: Seconds by which the aligned signals' lengths may differ before a warning: more is
#: rarely a codec's doing (a different excerpt, a cut file).
MAX_LENGTH_DIFFERENCE = 1.0


def delay_skips(delay: int) -> tuple[int, int]:
    """Samples to drop from the start of the reference and of the coded signal to remove a
    delay (positive: the coded signal lags), so that their frames compare the same sound."""
    return max(0, -delay), max(0, delay)


def split_padding(extra: int) -> tuple[int, int]:
    """``extra`` padding split into ``(before, after)``: half before, the odd one after."""
    return extra // 2, extra - extra // 2


def pad_pair(ref: np.ndarray, coded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the shorter of two signals on both sides to the length of the longer.

    The missing ``d`` samples are split as :func:`split_padding` does. The longer (or
    equal-length) signal is returned unchanged.

    Args:
        ref: Reference signal, time on the last axis.
        coded: Coded signal, time on the last axis; leading axes must match ``ref``'s.

    Returns:
        ``(ref, coded)`` with equal length; dtypes are preserved.

    Shape:
        - ref: ``[..., n_ref]``, coded: ``[..., n_coded]``.
        - Output: both ``[..., max(n_ref, n_coded)]``.
    """
    n = max(ref.shape[-1], coded.shape[-1])

    def _pad(x: np.ndarray) -> np.ndarray:
        d = n - x.shape[-1]
        if d == 0:
            return x
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [split_padding(d)])

    return _pad(ref), _pad(coded)


def pad_frames(x: Tensor, length: int) -> Tensor:
    """Zero-pad the last (frame) dimension on both sides to ``length`` (as :func:`pad_pair`).

    Shape:
        x: ``[..., T]`` → ``[..., max(T, length)]``.
    """
    extra = length - x.shape[-1]
    if extra <= 0:
        return x
    return torch.nn.functional.pad(x, split_padding(extra))


def stack_pair(ref: Tensor, cod: Tensor) -> Tensor:
    """The model's input for one pair: both spectrograms padded to the longer, stacked.

    Shape:
        ref: ``[4, bands, T_ref]``, cod: ``[4, bands, T_cod]`` → ``[4, 2, bands, T]`` with
        ``T = max(T_ref, T_cod)``.
    """
    t = max(ref.shape[-1], cod.shape[-1])
    return torch.stack([pad_frames(ref, t), pad_frames(cod, t)], dim=1)


def pair_frames(frames: list[int]) -> list[int]:
    """Frames of each pair: the longer of its two signals' (``frames`` lists the references'
    counts, then the coded signals')."""
    count = len(frames) // 2
    return [max(frames[j], frames[count + j]) for j in range(count)]


def stack_pairs(spec: Tensor, frames: list[int]) -> Tensor:
    """:func:`stack_pair` of a batch by one gather over frames (a number of kernel launches
    that does not grow with the batch): each pair's shorter signal zero-padded on both sides.

    Args:
        spec: Every signal's spectrogram, zero-padded at the end to a common width.
        frames: Valid frames of each signal: the references', then the coded signals'.

    Shape:
        spec: ``[B, 2, 4, bands, T]`` (signal ``k`` of pair ``j`` valid in its first
        ``frames[k * B + j]`` frames) → ``[B, 4, 2, bands, T_max]``, ``T_max`` the longest
        of :func:`pair_frames`.
    """
    count, device = spec.shape[0], spec.device
    total = pair_frames(frames)
    width = max(total)
    per_signal = [
        [frames[k * count + j], split_padding(total[j] - frames[k * count + j])[0]]
        for j in range(count)
        for k in range(2)
    ]
    own, left = values_on(device, per_signal).view(count, 2, 2).unbind(-1)
    t = torch.arange(width, device=device)
    source = t - left[..., None]  # [B, 2, T]: the signal's own frame at each pair frame
    valid = (source >= 0) & (source < own[..., None])
    source = source.clamp(0, spec.shape[-1] - 1)
    index = source[:, :, None, None, :].expand(*spec.shape[:-1], width)
    out = spec.gather(-1, index) * valid[:, :, None, None, :]
    return out.transpose(1, 2)


def length_difference(ref_seconds: float, cod_seconds: float, delay_seconds: float) -> float:
    """How much longer the coded signal is than its reference once the delay is removed
    (negative: shorter); compare its size with :data:`MAX_LENGTH_DIFFERENCE`."""
    return cod_seconds - ref_seconds - delay_seconds


def describe_difference(difference: float) -> str:
    """``"1.25 s longer"`` / ``"3.53 s shorter"`` for a :func:`length_difference`."""
    return f"{abs(difference):.2f} s {'longer' if difference > 0 else 'shorter'}"

"""A pair ready for the model: its analysis windows and the facts its prediction reports."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor

from gml.features.stream import AudioInfo

__all__ = ["PreparedPair", "prepared_pair", "window_spans"]


@dataclass
class PreparedPair:
    """One reference/coded pair, aligned, analysed and cut into windows.

    Attributes:
        windows: The model's inputs, one per analysis window (empty once scored: the
            statistics need only the spans).
        spans: ``(start, end)`` frames of each window.
        reference, coded: The files as read.
        delay: The codec delay removed, in samples at the frontend's rate (positive: the
            coded signal lags; see :mod:`gml.features.pair`).
        correlation: The delay search's normalised correlation (None: not searched).
        peaks: The loudest feature value of the reference and of the coded signal (on the
            model's device until the statistics read them; None leaves out the checks that
            need them).

    Shape:
        windows: each ``[4, 2, bands, T_window]``; peaks: ``[2]``.
    """

    windows: list[Tensor]
    spans: list[tuple[int, int]]
    reference: AudioInfo
    coded: AudioInfo
    delay: int
    correlation: float | None = None
    peaks: Tensor | None = None

    def scored(self) -> PreparedPair:
        """The pair without its windows' features (kept while its statistics wait)."""
        return replace(self, windows=[])


def window_spans(num_frames: int, window_frames: int, hop_frames: int) -> list[tuple[int, int]]:
    """``(start, end)`` frame ranges covering ``num_frames``: one window when it fits, else
    windows of ``window_frames`` every ``hop_frames``, the last ending with the excerpt."""
    if num_frames <= window_frames:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - window_frames + 1, hop_frames))
    if starts[-1] != num_frames - window_frames:
        starts.append(num_frames - window_frames)
    return [(s, s + window_frames) for s in starts]


def prepared_pair(
    pair: Tensor,
    reference: AudioInfo,
    coded: AudioInfo,
    delay: int,
    window_frames: int,
    hop_frames: int,
    correlation: float | None = None,
    peaks: Tensor | None = None,
) -> PreparedPair:
    """A :class:`PreparedPair` from the pair's stacked features
    (:func:`gml.features.pair.stack_pair`), cut into windows by :func:`window_spans`.

    Shape:
        pair: ``[4, 2, bands, T]``; peaks: ``[2]`` (computed from ``pair`` when not given).
    """
    if peaks is None:
        peaks = pair.amax(dim=(0, 2, 3))
    spans = window_spans(pair.shape[-1], window_frames, hop_frames)
    windows = [pair[..., s:e] for s, e in spans]
    return PreparedPair(windows, spans, reference, coded, delay, correlation, peaks)

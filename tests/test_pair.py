"""The aligned pair (gml.features.pair): one convention for training and scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gml.features.pair import (
    delay_skips,
    describe_difference,
    length_difference,
    pad_frames,
    pad_pair,
    pair_frames,
    stack_pair,
    stack_pairs,
)


def test_the_delay_is_dropped_from_the_later_signal():
    assert delay_skips(30) == (0, 30)  # the coded signal lags: drop its first samples
    assert delay_skips(-7) == (7, 0)
    assert delay_skips(0) == (0, 0)


def test_frames_and_samples_are_padded_alike():
    """Padding a spectrogram's frames splits the padding as padding the waveform does."""
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    _, padded = pad_pair(np.zeros((2, 12), np.float32), x)
    framed = pad_frames(torch.from_numpy(x), 12)
    np.testing.assert_array_equal(padded, framed.numpy())
    assert torch.equal(framed[:, 3:8], torch.from_numpy(x))  # 7 missing: 3 before, 4 after
    same = torch.ones(2, 5)
    assert pad_frames(same, 5) is same and pad_frames(same, 3) is same  # long enough already


@pytest.mark.parametrize("lengths", [[(7, 5), (3, 9), (6, 6)], [(1, 4)], [(9, 2), (2, 9)]])
def test_the_batch_gather_equals_stacking_each_pair(lengths):
    """:func:`stack_pairs` (one gather for a batch, signals zero-padded at the end to a common
    width) gives each pair exactly :func:`stack_pair`'s input, cut to the pair's frames."""
    torch.manual_seed(0)
    signals = [[torch.rand(4, 3, n) + 1 for n in pair] for pair in lengths]
    width = max(n for pair in lengths for n in pair)
    spec = torch.zeros(len(lengths), 2, 4, 3, width)
    for j, pair in enumerate(signals):
        for k, x in enumerate(pair):
            spec[j, k, ..., : x.shape[-1]] = x
    frames = [r for r, _ in lengths] + [c for _, c in lengths]
    out = stack_pairs(spec, frames)
    for j, (ref, cod) in enumerate(signals):
        t = pair_frames(frames)[j]
        assert torch.equal(out[j, ..., :t], stack_pair(ref, cod))
        assert not out[j, ..., t:].any()  # beyond the pair's frames: zeros


def test_length_difference_counts_the_removed_delay():
    assert length_difference(10.0, 10.5, 0.5) == pytest.approx(0.0)
    assert describe_difference(length_difference(10.0, 6.47, 0.0)) == "3.53 s shorter"
    assert describe_difference(1.25) == "1.25 s longer"

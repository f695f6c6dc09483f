"""InSENet: shapes for any T, presets, shared vs separate view branches."""

from __future__ import annotations

import pytest
import torch

from gml.backbones import InSENet


@pytest.mark.parametrize("frames", [1, 7, 50])
@pytest.mark.parametrize("shared", [True, False])
def test_any_length(frames, shared):
    net = InSENet("tiny", shared_views=shared)
    y = net(torch.randn(2, 4, 2, 32, frames))
    assert y.shape == (2, net.out_features)
    y.sum().backward()


def test_presets_and_overrides():
    small = InSENet("small")
    wide = InSENet("small", channels=(32, 64, 96))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > count(small)
    assert count(InSENet("tiny", shared_views=False)) > count(InSENet("tiny"))
    with pytest.raises(ValueError, match="preset"):
        InSENet("huge")


def test_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"\[B, 4, 2, 32, T\]"):
        InSENet("tiny")(torch.randn(2, 8, 32, 10))

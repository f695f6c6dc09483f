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


def test_stem_stride_pair_strides_frames_only():
    """``stem_stride=(1, 2)`` halves the frames after the stem and keeps the bands, so the
    parameter count is the same as stride 1 (the time pooling absorbs any length)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    one = InSENet("tiny", stem_stride=1)
    frames = InSENet("tiny", stem_stride=(1, 2))
    both = InSENet("tiny", stem_stride=2)
    assert count(frames) == count(one) > count(both)
    x = torch.randn(1, 3, 32, 51)
    assert frames.branches[0].trunk[:2](x).shape[2:] == (32, 26)
    assert both.branches[0].trunk[:2](x).shape[2:] == (16, 26)
    assert frames(torch.randn(2, 4, 2, 32, 51)).shape == (2, frames.out_features)
    with pytest.raises(ValueError, match="stem_stride"):
        InSENet("tiny", stem_stride=(1, 2, 3))
    with pytest.raises(ValueError, match="stem_stride"):
        InSENet("tiny", stem_stride=0)


def test_paper_fast_preset_has_the_paper_parameters():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    fast, paper = InSENet("paper-fast"), InSENet("paper")
    assert count(fast) == count(paper)
    assert fast.branches[0].trunk[1][0].stride == (1, 2)
    assert paper.branches[0].trunk[1][0].stride == (1, 1)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 6), (1, 2, 4, 1), (1, 2, 2, 2)])
def test_separable_max_equals_the_pooling_kernel(shape):
    """The separable 3x3 max of the CPU trunk gives exactly nn.MaxPool2d's values, NaN
    included, in either memory format."""
    from gml.backbones.insenet_cpu import separable_max3x3

    x = torch.randn(*shape)
    x.view(-1)[0] = float("nan")
    want = torch.nn.MaxPool2d(3, stride=1, padding=1)(x)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = separable_max3x3(x.contiguous(memory_format=layout))
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_the_cpu_trunk_computes_the_plain_network(preset):
    """The CPU trunk (cpu_trunk) equals the plain network: bit for bit when both see the
    same chunks of images in channels-last format (pooling before the squeeze-excitation
    scaling and the separable max are exact), on odd sizes where ceil-mode pooling has
    partial windows; to float rounding with the stem and first block one image at a time,
    and against the whole batch in the default format."""
    from gml.backbones.insenet_cpu import CpuViewBranch
    from gml.inference import cpu_trunk

    torch.manual_seed(0)
    net = InSENet(preset).eval()
    x = 10 * torch.randn(3, 4, 2, 32, 45)
    with torch.no_grad():
        plain = net(x)
        fast = cpu_trunk(net)(x)
        branch = net.branches[0]
        images = torch.randn(12, 3, 32, 45).contiguous(memory_format=torch.channels_last)
        chunked = torch.cat([branch(c) for c in images.split(4)])
        same_chunks = CpuViewBranch(branch, chunk=4, first_chunk=4)(images)
    assert torch.equal(same_chunks, chunked)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_the_cpu_trunk_leaves_the_network_as_written():
    """cpu_trunk returns an eval-mode copy: the network keeps its mode, modules, hooks and
    gradients (training takes no shortcut), and a user's backbone is copied unchanged."""
    from gml.backbones.insenet import ViewBranch
    from gml.backbones.insenet_cpu import CpuViewBranch
    from gml.inference import cpu_trunk

    torch.manual_seed(0)
    net = InSENet("tiny").train()
    fast = cpu_trunk(net)
    assert not fast.training and isinstance(fast.branches[0], CpuViewBranch)
    assert net.training and type(net.branches[0]) is ViewBranch
    hooked = []
    net.branches[0].trunk.register_forward_hook(lambda *args: hooked.append(True))
    x = torch.randn(2, 4, 2, 32, 20)  # features never require gradients; the weights do
    net(x).sum().backward()
    assert hooked and net.branches[0].trunk[1][0].weight.grad is not None
    user = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    copied = cpu_trunk(user)
    assert copied is not user and torch.equal(copied[0].weight, user[0].weight)

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
def test_cpu_max_pool_equals_the_pooling_kernel(shape):
    """The separable 3x3 max used for inference on CPU gives exactly nn.MaxPool2d's values,
    NaN included, in either memory format."""
    from gml.backbones.insenet import MaxPool3x3

    x = torch.randn(*shape)
    x.view(-1)[0] = float("nan")
    want = torch.nn.MaxPool2d(3, stride=1, padding=1)(x)
    for layout in (torch.contiguous_format, torch.channels_last):
        with torch.inference_mode():
            got = MaxPool3x3()(x.contiguous(memory_format=layout))
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_cpu_inference_shortcuts_compute_the_same_function(preset, monkeypatch):
    """Without gradients on CPU the trunk pools before the squeeze-excitation scaling and
    uses the separable max: bit-for-bit the output of the general path (taken here by asking
    for gradients), on odd sizes where ceil-mode pooling has partial windows. Running the
    stem and first block one image at a time changes only the float rounding."""
    from gml.backbones import insenet

    torch.manual_seed(0)
    net = InSENet(preset).eval()
    x = 10 * torch.randn(3, 4, 2, 32, 45)
    general = net(x.clone().requires_grad_(True)).detach()
    with torch.inference_mode():
        by_image = net(x)
        monkeypatch.setattr(insenet.ViewBranch, "cpu_eval_first_chunk", 1 << 30)
        whole = net(x)
    assert torch.equal(whole, general)
    torch.testing.assert_close(by_image, general, rtol=1e-5, atol=1e-6)


def test_first_block_by_image_only_in_eval_mode(monkeypatch):
    """The stem and first block take images one at a time only in eval mode: in training
    mode (even without gradients) batch norm must see the whole batch, so the output is the
    general path's, bit for bit."""
    from gml.backbones import insenet

    calls = []
    run = insenet.ViewBranch._run

    def counted(layers, x):
        calls.append(x.shape[0])
        return run(layers, x)

    monkeypatch.setattr(insenet.ViewBranch, "_run", staticmethod(counted))
    torch.manual_seed(0)
    net = InSENet("tiny")
    x = torch.randn(2, 4, 2, 32, 20)
    with torch.no_grad():
        net.eval()(x)
        assert calls == ([1] * 4 + [4]) * 2  # two chunks of 4 images (one pair each)
        calls.clear()
        net.train()
        torch.manual_seed(1)
        fast = net(x)
        assert calls == [8, 8]
    torch.manual_seed(1)
    general = net(x.clone().requires_grad_(True)).detach()
    assert torch.equal(fast, general)
    # nor when only the batch norms normalise with the batch (e.g. test-time adaptation)
    net.eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    calls.clear()
    with torch.no_grad():
        net(x)
    assert calls == [8, 8]


def test_training_on_cpu_takes_no_shortcut(monkeypatch):
    """With gradients enabled (training, whatever the input) the general modules run, so
    gradients and forward hooks are those of the network as written."""
    from gml.backbones import insenet

    def refuse(*args, **kwargs):
        raise AssertionError("an inference shortcut ran with gradients enabled")

    monkeypatch.setattr(insenet.ViewBranch, "_trunk", refuse)
    monkeypatch.setattr(insenet, "_max3", refuse)
    torch.manual_seed(0)
    net = InSENet("tiny").train()
    hooked = []
    net.branches[0].trunk.register_forward_hook(lambda *args: hooked.append(True))
    x = torch.randn(2, 4, 2, 32, 20)  # features never require gradients; the weights do
    net(x).sum().backward()
    assert hooked and net.branches[0].trunk[1][0].weight.grad is not None

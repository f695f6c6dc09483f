"""The default InSENet ("paper" preset) has the GML paper's size: 15.25 M parameters with the
2-output logistic head, and widening the output from 1 to 2 values adds ≈ 0.0033 %."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gml.backbones import InSENet
from gml.heads import LogisticHead

PAPER_TOTAL = 15.25e6  # GML paper, section III-D: "Our proposed GML has 15.25M parameters"
PAPER_EXTRA = 0.0033e-2  # "... only a meager 0.0033% more than its non-generative counterpart"


def count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def with_head(net: InSENet) -> int:
    head = LogisticHead()
    head.build(net.out_features)
    return count(net, head)


@pytest.fixture(scope="module")
def paper() -> InSENet:
    return InSENet()  # the default: preset "paper", one branch shared by the four views


def test_default_is_paper_size(paper):
    assert paper.shared_views
    total = with_head(paper)
    assert abs(total / PAPER_TOTAL - 1) < 0.02, total


def test_two_outputs_add_about_0_0033_percent(paper):
    two = with_head(paper)
    one = count(paper, nn.Linear(paper.out_features, 1))  # the non-generative counterpart
    extra = two - one
    assert extra == paper.out_features + 1  # one more weight row and bias
    assert 450 <= extra <= 550
    # 0.0033 % printed to two significant figures: 0.00325 % ... 0.00335 %.
    assert abs(extra / one / PAPER_EXTRA - 1) < 0.02, extra / one


def test_separate_view_branches_are_larger(paper):
    shared = with_head(paper)
    separate = with_head(InSENet(shared_views=False))
    assert separate > shared
    # Only the convolutional branch is duplicated (4 views → 3 extra copies).
    assert separate - shared == 3 * count(paper.branches[0])


def test_paper_preset_forward_short_input(paper):
    paper.eval()
    with torch.no_grad():
        y = paper(torch.randn(1, 4, 2, 32, 20))
    assert y.shape == (1, paper.out_features)
    assert torch.isfinite(y).all()


def test_paper_preset_backward_short_input(paper):
    paper.train()
    paper.zero_grad()
    paper(torch.randn(2, 4, 2, 32, 9)).sum().backward()
    assert paper.fc[1].weight.grad is not None
    assert paper.branches[0].trunk[1][0].weight.grad is not None  # the stem convolution


def test_module_default_backbone_is_the_paper_network():
    """``GMLModule()`` without a backbone is the paper's system (InSE-Net + logistic head)."""
    from gml.module import GMLModule

    module = GMLModule()
    assert isinstance(module.backbone, InSENet)
    assert count(module.backbone, module.head) == with_head(InSENet())

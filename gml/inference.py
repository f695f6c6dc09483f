"""Preparing a trained network for inference: the same function, computed with less work
(deploy-time transforms, applied to a copy: the trained network stays as written).

Batch normalisation in eval mode is an affine map per channel; directly after a convolution it
can be folded into the convolution's weights and bias, which removes one full pass over every
activation (on CPU about a third of InSE-Net's time besides the convolutions:
``benchmarks/model_forward.py``). The result equals the original to float rounding.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from gml.backbones.insenet import ViewBranch
from gml.backbones.insenet_cpu import CpuViewBranch

__all__ = ["cpu_trunk", "fold_batchnorm"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batchnorm(module: nn.Module, in_place: bool = False) -> nn.Module:
    """An eval-mode copy of ``module`` with every batch norm that directly follows a
    convolution inside an ``nn.Sequential`` folded into that convolution.

    Any network works (a user's backbone too): patterns that do not match are left as they
    are, and the original module is not changed. Only for inference: the folded network has
    no batch statistics to update.

    Args:
        module: A network (in any mode).
        in_place: Fold ``module`` itself (a network built for inference only) instead of a
            copy.

    Returns:
        The folded network, in eval mode.
    """
    folded = (module if in_place else copy.deepcopy(module)).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if (
                isinstance(conv, _CONV)
                and isinstance(norm, _NORM)
                and norm.running_mean is not None
                and norm.running_var is not None
                and conv.out_channels == norm.num_features
            ):
                seq[i] = fuse_conv_bn_eval(conv, norm)
                seq[i + 1] = nn.Identity()
    return folded


def cpu_trunk(module: nn.Module, in_place: bool = False) -> nn.Module:
    """An eval-mode copy of ``module`` for inference on CPU: each InSE-Net view branch
    replaced by its CPU trunk (:class:`~gml.backbones.insenet_cpu.CpuViewBranch`: the same
    function to float rounding, computed with less work). Other networks (a user's backbone)
    are left as they are. Only for inference: the copy's batch norms normalise with their
    running statistics, and its gradients are not those of the network as written.

    Args:
        module: A network (in any mode), e.g. :func:`fold_batchnorm`'s copy.
        in_place: Change ``module`` itself (a copy made for inference already) instead of a
            copy.

    Returns:
        The network for CPU inference, in eval mode.
    """
    net = (module if in_place else copy.deepcopy(module)).eval()
    if isinstance(net, ViewBranch):
        return CpuViewBranch(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ViewBranch):
                setattr(parent, name, CpuViewBranch(child))
    return net

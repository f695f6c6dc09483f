"""InSE-Net's view branch for inference on CPU: the same function as
:class:`~gml.backbones.insenet.ViewBranch`, computed with less work.

Built by :func:`gml.inference.cpu_trunk` from a trained branch (it uses the branch's own
layers); for inference only: batch norm must normalise with its running statistics (eval
mode), since the images pass in chunks. The shortcuts, each exact or equal to float rounding:

- channels-last memory format: oneDNN's convolutions and pooling are much faster on it on
  CPU (``docs/performance.md``); the values are the same;
- images in chunks of :attr:`CpuViewBranch.chunk` (one pair's four views), and the stem and
  first Inception block (at full resolution, the largest activations) one image at a time:
  the activations stay in the caches and the allocator reuses their memory; equal to float
  rounding (convolutions may group their sums differently for another batch size);
- each block's squeeze-excitation weights applied after the 2×2 max-pool that follows it, on
  a quarter of the values: exact, since a max-pool commutes with multiplying each channel by
  a weight > 0 (rounding is monotone, so even the float products agree);
- the Inception pool path's 3×3 max as two separable 3-wide maxima
  (:func:`separable_max3x3`): exact (a maximum is exact, and the padding never wins).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gml.backbones.insenet import InceptionSE, MaxPool3x3, ViewBranch, time_pooled

__all__ = ["CpuViewBranch", "separable_max3x3"]


def _max3(x: Tensor, dim: int) -> Tensor:
    """The maximum over 3 neighbours along ``dim`` (the border's missing neighbour ignored):
    ``max(x[j-1], x[j], x[j+1])`` as the maximum of two neighbouring pair maxima."""
    n = x.shape[dim]
    if n == 1:
        return x
    pairs = torch.maximum(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1))  # j, j+1
    out = torch.empty_like(x)
    if n > 2:
        torch.maximum(
            pairs.narrow(dim, 0, n - 2), pairs.narrow(dim, 1, n - 2), out=out.narrow(dim, 1, n - 2)
        )
    out.narrow(dim, 0, 1).copy_(pairs.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).copy_(pairs.narrow(dim, n - 2, 1))
    return out


def separable_max3x3(x: Tensor) -> Tensor:
    """:class:`~gml.backbones.insenet.MaxPool3x3`'s values as two separable 3-wide maxima
    (faster than the pooling kernel, which also writes an index per output; for inference:
    its gradient would split between equal maxima where the kernel's goes to one).

    Shape:
        x: ``[N, C, F, T]`` → same shape.
    """
    return _max3(_max3(x, 3), 2)


class CpuViewBranch(nn.Module):
    """A trained :class:`~gml.backbones.insenet.ViewBranch` for inference on CPU (see the
    module docstring); it holds the branch's own layers and changes none of them.

    Args:
        branch: The trained branch (its layers are taken, not copied).
        chunk: Images passing the trunk at a time (4: one pair's views).
        first_chunk: Images passing the stem and first Inception block at a time.

    Shape:
        x: ``[N, 3, F, T]`` → ``[N, 2·C_last, F / 2^k]`` (as the branch).
    """

    def __init__(self, branch: ViewBranch, chunk: int = 4, first_chunk: int = 1):
        super().__init__()
        layers = list(branch.trunk)
        first = next(
            (i + 2 for i, layer in enumerate(layers) if type(layer) is InceptionSE), len(layers)
        )
        self.head_layers = nn.ModuleList(layers[:first])
        self.rest_layers = nn.ModuleList(layers[first:])
        self.chunk, self.first_chunk = int(chunk), int(first_chunk)

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.cat([self._pooled(c) for c in x.split(self.chunk)])

    def _pooled(self, x: Tensor) -> Tensor:
        x = torch.cat([_run(self.head_layers, c) for c in x.split(self.first_chunk)])
        return time_pooled(_run(self.rest_layers, x))


def _run(layers: Sequence[nn.Module], x: Tensor) -> Tensor:
    """``layers`` in turn, each Inception block's squeeze-excitation after the 2×2 pooling
    that follows it."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        pool = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is InceptionSE and type(pool) is nn.MaxPool2d:
            y = _paths(layer, x)
            x = pool(y) * layer.se.weights(y)[:, :, None, None]
            i += 2
        else:
            x = layer(x)
            i += 1
    return x


def _paths(block: InceptionSE, x: Tensor) -> Tensor:
    """:meth:`InceptionSE.paths`, the pool path's 3×3 max computed separably.

    Shape:
        x: ``[N, c_in, F, T]`` → ``[N, c_out, F, T]``.
    """
    pool, *after = block.pp
    y = separable_max3x3(x) if isinstance(pool, MaxPool3x3) else pool(x)
    for layer in after:
        y = layer(y)
    return torch.cat([block.p1(x), block.p3(x), block.p5(x), y], dim=1)

"""Left/right channel swap of training pairs (paper, section III-A)."""

from __future__ import annotations

import torch
from torch import Tensor

from gml.augment.base import BatchAugment

# Views on dim 1 of ``features``: L, R, M, S. Swapping L and R permutes the first two.
_SWAPPED_VIEWS = (1, 0, 2, 3)


class ChannelSwap(BatchAugment):
    """Swap the left and right channels of whole examples, keeping their labels.

    With probability ``p`` per example, the L and R views (indices 0 and 1 of dim 1) are
    exchanged, for the reference and the coded signal together. The M view, ``(L + R) / 2``, is
    invariant under the swap. The S view, ``(L - R) / 2``, only changes sign, and the features
    are gammatone magnitudes (a sign flip of the signal leaves them unchanged), so S is kept as
    is too. The target and the stimulus index are kept.

    Args:
        p: Probability that an example is swapped (0 disables the augmentation, 1 always
            swaps).
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["features"]
        swap = torch.rand(x.shape[0], device=x.device) < self.p
        swapped = x[:, list(_SWAPPED_VIEWS)]
        out = dict(batch)
        out["features"] = torch.where(swap.view(-1, 1, 1, 1, 1), swapped, x)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"

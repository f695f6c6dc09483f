"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) of training pairs (paper, IV-C).

Both pair every example A with a partner B from a random permutation of the batch and mix the
labels as ``λ·y_A + (1 − λ)·y_B`` with ``λ ~ Beta(α, α)`` per example. The label is whatever
``batch["target"]`` holds: individual listener scores for a GML head, per-stimulus mean scores
for the non-GML point head. For whole panels (``[B, N]`` targets with a ``mask``), each of A's
listeners is paired with a listener of B drawn at random, as two per-rating triplets meet in
a shuffled batch: ``λ·s_A,j + (1 − λ)·s_B,k`` with ``k`` uniform over B's real scores. The reference and coded spectrograms and the four views (L, R, M,
S) of an example are always mixed identically.

All random numbers come from torch's global RNG on the batch's device (seed with
``torch.manual_seed``). The inputs are never modified in place; a shallow copy of the batch with
new ``features`` and ``target`` tensors is returned.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from gml.augment.base import BatchAugment


def _check(alpha: float, p: float) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")


def _draw(alpha: float, p: float, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``λ ~ Beta(α, α)`` (float32, ``[n]``) and which examples are mixed (``[n]`` bool)."""
    conc = torch.full((n,), float(alpha), device=device)
    lam = torch.distributions.Beta(conc, conc).sample()
    apply = torch.rand(n, device=device) < p
    return lam, apply


def _mix_target(y: Tensor, lam: Tensor, perm: Tensor, mask: Tensor | None = None) -> Tensor:
    """``λ·y_A + (1 − λ)·y_B``; for panels ``[B, N]`` (``mask``: real scores) each of A's
    scores meets a uniformly drawn real score of its partner B."""
    lam = lam.to(y.dtype) if y.is_floating_point() else lam
    if y.dim() == 1:
        return lam * y + (1 - lam) * y[perm]
    n_b = mask[perm].sum(dim=1, keepdim=True).clamp(min=1)  # [B, 1] partner panel sizes
    # real scores come first in a padded panel, so an index below n_b is a real one
    pick = (torch.rand(y.shape, device=y.device) * n_b).long().clamp(max=y.shape[1] - 1)
    partner = y[perm].gather(1, pick)
    return lam[:, None] * y + (1 - lam[:, None]) * partner


class _PairMix(BatchAugment):
    """Shared part of MixUp and CutMix: draw λ and a partner per example, mix the targets.

    Subclasses implement :meth:`_mix_features`, returning the mixed features and the λ that
    actually applies to the labels.
    """

    def __init__(self, alpha: float = 0.7, p: float = 1.0):
        _check(alpha, p)
        self.alpha = float(alpha)
        self.p = float(p)
        self.last_lam: Tensor | None = None
        self.last_perm: Tensor | None = None

    @abstractmethod
    def _mix_features(
        self, x: Tensor, lam: Tensor, apply: Tensor, perm: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mixed features and the λ that weights the labels.

        Shape:
            x: ``[B, 4, 2, bands, T]``; lam, apply, perm: ``[B]``.
        """

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x, y = batch["features"], batch["target"]
        b = x.shape[0]
        lam, apply = _draw(self.alpha, self.p, b, x.device)
        lam = torch.where(apply, lam, torch.ones_like(lam))
        perm = torch.randperm(b, device=x.device)
        features, lam_used = self._mix_features(x, lam, apply, perm)
        out = dict(batch)
        out["features"] = features
        out["target"] = _mix_target(y, lam_used, perm, batch.get("mask"))
        self.last_lam, self.last_perm = lam_used, perm
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, p={self.p})"


class MixUp(_PairMix):
    """Blend each example with a random partner of the batch.

    ``features = λ·x_A + (1 − λ)·x_B`` over the whole ``[4, 2, bands, T]`` tensor and
    ``target = λ·y_A + (1 − λ)·y_B``. After each call :attr:`last_lam` (``[B]``, 1 for unmixed
    examples) and :attr:`last_perm` (``[B]``, partner of each example) hold the draws.

    Args:
        alpha: Concentration of the symmetric ``Beta(α, α)`` that λ is drawn from.
        p: Probability that an example is mixed; the others are left as they are (λ = 1).
    """

    def _mix_features(self, x, lam, apply, perm):
        lx = lam.to(x.dtype).view(-1, 1, 1, 1, 1)
        return lx * x + (1 - lx) * x[perm], lam


class CutMix(_PairMix):
    """Paste a random time-frequency box of a partner example into each example.

    Per example, ``λ ~ Beta(α, α)`` sets the box: sides ``⌊bands·√(1−λ)⌋`` and
    ``⌊T·√(1−λ)⌋`` around a uniformly random centre, clipped to the borders (Yun et al. 2019).
    The same box is pasted from the partner into the reference and the coded spectrogram of all
    four views. λ is then corrected to the fraction actually kept,
    ``λ = 1 − box area / (bands·T)``, and ``target = λ·y_A + (1 − λ)·y_B``.

    Because the box is clipped and rounded down, the corrected λ is never below the drawn one
    and is biased upwards (for α = 0.7 its mean is about 0.69, not 0.5); this is the reference
    algorithm's behaviour. The frames axis is the batch's padded length: examples shorter than
    the longest of the batch are zero-padded on both sides, and the box and λ are computed over
    the full padded ``T`` (a box may therefore cut into padding of either example).

    After each call :attr:`last_lam` (corrected, ``[B]``), :attr:`last_lam_drawn` (the Beta
    draws, ``[B]``), :attr:`last_perm` (``[B]``) and :attr:`last_boxes` (``[B, 4]`` long:
    ``f0, f1, t0, t1``, half-open band and frame ranges; empty for unmixed examples) hold the
    draws.

    Args:
        alpha: Concentration of the symmetric ``Beta(α, α)`` that λ is drawn from (0.7 in the
            paper).
        p: Probability that an example is mixed; the others are left as they are (λ = 1).
    """

    def __init__(self, alpha: float = 0.7, p: float = 1.0):
        super().__init__(alpha, p)
        self.last_lam_drawn: Tensor | None = None
        self.last_boxes: Tensor | None = None

    @staticmethod
    def _span(size: int, cut: Tensor, apply: Tensor) -> tuple[Tensor, Tensor]:
        """Half-open ``[lo, hi)`` of length ``cut`` around a random centre, clipped to
        ``[0, size)``; empty where ``apply`` is false."""
        centre = torch.randint(0, size, cut.shape, device=cut.device)
        lo = centre - cut // 2
        hi = (lo + cut).clamp(0, size)
        lo = lo.clamp(0, size)
        hi = torch.where(apply, hi, lo)
        return lo, hi

    def _mix_features(self, x, lam, apply, perm):
        b, n_f, n_t = x.shape[0], x.shape[-2], x.shape[-1]
        dev = x.device
        ratio = (1 - lam).clamp(min=0).sqrt()
        f0, f1 = self._span(n_f, (n_f * ratio).floor().long(), apply)
        t0, t1 = self._span(n_t, (n_t * ratio).floor().long(), apply)

        bands = torch.arange(n_f, device=dev)
        frames = torch.arange(n_t, device=dev)
        in_f = (bands >= f0[:, None]) & (bands < f1[:, None])  # [B, F]
        in_t = (frames >= t0[:, None]) & (frames < t1[:, None])  # [B, T]
        box = (in_f[:, :, None] & in_t[:, None, :]).view(b, 1, 1, n_f, n_t)

        area = (f1 - f0) * (t1 - t0)
        self.last_lam_drawn = lam
        self.last_boxes = torch.stack([f0, f1, t0, t1], dim=1)
        return torch.where(box, x[perm], x), 1 - area.float() / (n_f * n_t)

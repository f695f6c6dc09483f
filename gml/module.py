"""GMLModule: (augment →) backbone → distribution head, trained on individual scores."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from gml.augment import BatchAugment
from gml.errors import GMLError
from gml.features import GammatoneFrontend
from gml.heads import DistributionHead
from gml.network import ListenerNetwork
from gml.stats import SCORE_RANGE, ci_halfwidth


def randomized_pit(dist, scores: Tensor, seed: int = 1234567) -> Tensor:
    """Probability integral transform of scores under ``dist``: ``F(score)`` for continuous
    distributions; where ``dist`` has a point mass at the score (censored heads at 0 and 100)
    a uniform draw in ``[F(score−), F(score)]``, so a calibrated model's PIT is uniform either
    way (the draws are seeded: reports are reproducible).

    Shape:
        scores: ``[N, B]`` (broadcast against the batch) → ``[N, B]``.
    """
    upper = dist.cdf(scores)
    lower = dist.cdf(torch.nextafter(scores, torch.full_like(scores, -float("inf"))))
    jump = (upper - lower).clamp(min=0)
    if not bool((jump > 1e-6).any()):
        return upper
    g = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.rand(scores.shape, generator=g).to(scores.device, scores.dtype)
    return lower + u * jump


class GMLModule(ListenerNetwork, L.LightningModule):
    """The Generative Machine Listener: frontend settings, backbone and head in one module.

    The frontend belongs to the model: its settings are saved in the checkpoint with the
    backbone and head, so a trained listener computes features the way it was trained. Training
    reads features through the data module (and its cache), which must use the same settings;
    this is checked when a trainer attaches both.

    Args:
        backbone: Any module mapping ``[B, 4, 2, bands, T]`` features to ``[B, D]`` (default:
            the paper-size :class:`~gml.backbones.InSENet` for the frontend's bands).
        head: The distribution head (default :class:`~gml.heads.LogisticHead`).
        augment: Batch augmentations applied, in order, to training batches only, on the
            device the batch is on.
        optimizer: Factory ``params → optimizer`` (default Adam, lr 1e-4 as in the paper).
        frontend: The gammatone frontend (default: ViSQOL v3 audio-mode settings).
        spread_factor: Post-hoc factor on the predicted listener spread (1: none); set by
            ``gml calibrate`` (see :mod:`gml.calibration`), not by hand.

    The training loss is the head's loss on ``batch["target"]``: individual listener scores for
    a GML head, per-stimulus means for the non-GML :class:`~gml.heads.PointHead`.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        head: DistributionHead | None = None,
        augment: Sequence[BatchAugment] | None = None,
        optimizer: OptimizerCallable | None = None,
        frontend: GammatoneFrontend | None = None,
        spread_factor: float = 1.0,
    ):
        super().__init__()
        self.set_up_network(backbone, head, frontend, spread_factor)
        self.augment = list(augment or [])
        self.optimizer_factory = optimizer

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.augment and self._trainer is not None and self._trainer.training:
            for aug in self.augment:
                batch = aug(batch)
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        dist = self(batch["features"])
        target = batch["target"]
        if target.dim() == 2:  # whole panels (data.train_on: panels)
            loss, n = self.panel_loss(dist, target, batch["mask"])
        else:
            loss, n = self.head.loss(dist, target), len(target)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def panel_loss(self, dist, scores: Tensor, mask: Tensor) -> tuple[Tensor, int]:
        """Mean NLL over every real rating of a batch of panels: each rating weighs the same,
        so the loss is the one a batch of per-rating triplets of these stimuli would give.

        Shape:
            scores, mask: ``[B, N]`` → a scalar and the number of ratings.
        """
        per_stimulus = self.head.nll(dist, scores, mask)
        ratings = mask.sum(dim=1).to(per_stimulus.dtype)
        return (per_stimulus * ratings).sum() / ratings.sum().clamp(min=1), int(mask.sum())

    def _evaluate(self, batch: dict) -> dict[str, Tensor]:
        """Predictions of a batch of whole stimuli beside the subjective statistics the batch
        carries (computed once, in :mod:`gml.stats`, by the data module).

        Shape:
            every output ``[B]`` except ``nll`` (one per real score), and ``nll_panel`` and
            ``pit`` ``[B, N]`` (each listener's NLL, and the predicted CDF at each listener's
            score; NaN for padding, and ``pit`` NaN without a CDF).
        """
        dist = self(batch["features"])
        scores, mask = batch["scores"], batch["mask"]
        n = batch["n_listeners"]
        # the CI of a listening test depends on how listeners disagree: an ensemble's mixture
        # also spreads with the models' disagreement, which the CI must not include
        pred_std = getattr(dist, "listener_stddev", dist.stddev)
        model_std = getattr(dist, "model_stddev", torch.full_like(pred_std, float("nan")))
        per_listener = scores.transpose(0, 1)  # distributions broadcast over a leading dim
        nll_each = -dist.log_prob(per_listener).transpose(0, 1)
        try:
            pit = randomized_pit(dist, per_listener).transpose(0, 1)
        except NotImplementedError:  # a user's distribution without a closed-form CDF
            pit = torch.full_like(scores, float("nan"))
        return {
            "index": batch["index"],
            # the mean of a rating on a 0-100 slider lies on the scale: clamp, and flag it
            "pred_mean": dist.mean.clamp(*SCORE_RANGE),
            "pred_mean_raw": dist.mean,
            "clamped": (dist.mean < SCORE_RANGE[0]) | (dist.mean > SCORE_RANGE[1]),
            "pred_std": pred_std,
            "pred_model_std": model_std,
            "pred_ci": ci_halfwidth(pred_std, n),
            "subj_mean": batch["subj_mean"],
            "subj_ci": batch["subj_ci"],
            "n_listeners": n,
            "nll": nll_each[mask],
            "nll_panel": torch.where(mask, nll_each, torch.full_like(nll_each, float("nan"))),
            "pit": torch.where(mask, pit, torch.full_like(pit, float("nan"))),
            "loss": self.head.loss(
                dist, batch["target"] if self.train_target == "mean" else scores, mask
            ),
        }

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self._evaluate(batch)
        b = len(batch["index"])
        self.log("val/loss", out["loss"], prog_bar=True, batch_size=b)
        if self.train_target == "scores":
            self.log("val/nll", out["nll"].mean(), batch_size=int(out["nll"].numel()))

    # -- testing --------------------------------------------------------------------------

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Per-stimulus outputs. A :class:`gml.evaluation.TestReport` callback turns them into
        metrics and reports; ``gml test``, :func:`gml.evaluate` and ``gml cv`` attach one, and
        ``Trainer(callbacks=[TestReport()])`` does in a notebook (without one, ``trainer.test``
        computes the outputs and reports nothing)."""
        return {k: v.detach() for k, v in self._evaluate(batch).items()}

    def setup(self, stage: str) -> None:
        """Check that the data module computes features and targets the way this model needs."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        frontend = getattr(dm, "frontend", None)
        if (
            isinstance(frontend, GammatoneFrontend)
            and frontend.settings() != self.frontend.settings()
        ):
            diff = {
                k: (v, self.frontend.settings().get(k))
                for k, v in frontend.settings().items()
                if self.frontend.settings().get(k) != v
            }
            raise GMLError(
                "the data module's frontend differs from the model's (data vs model: "
                + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items())
                + "); build the data module with frontend=model.frontend"
            )
        target = getattr(dm, "train_target", None)
        if stage == "fit" and target is not None and target != self.train_target:
            raise GMLError(
                f"the data module yields {target!r} targets but the head "
                f"{type(self.head).__name__} trains on {self.train_target!r}; build it with "
                f"train_target={self.train_target!r}"
            )

    # -- prediction -----------------------------------------------------------------------

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``trainer.predict`` over a data module's stimuli (scoring audio files is
        :class:`gml.listener.Listener`'s job): the mean on the 0–100 scale and the listener
        spread, as ``gml test`` reports them."""
        dist = self(batch["features"])
        return {
            "index": batch["index"].cpu(),
            "pred_mean": dist.mean.clamp(*SCORE_RANGE).cpu(),
            "pred_std": getattr(dist, "listener_stddev", dist.stddev).cpu(),
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-4)
        return self.optimizer_factory(self.parameters())

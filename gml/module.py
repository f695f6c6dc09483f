"""GMLModule: (augment →) backbone → distribution head, trained on individual scores."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from gml.augment import BatchAugment
from gml.heads import DistributionHead, LogisticHead
from gml.metrics import UPDATE_KWARGS, metric_collection
from gml.stats import ci_halfwidth, stimulus_stats


def infer_out_features(backbone: nn.Module, num_bands: int = 32) -> int:
    """The backbone's feature width: its ``out_features`` attribute, else one dry run."""
    width = getattr(backbone, "out_features", None)
    if isinstance(width, int):
        return width
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        y = backbone(torch.zeros(1, 4, 2, num_bands, 16))
    backbone.train(was_training)
    if y.dim() != 2:
        raise ValueError(f"backbone must return [B, D] features, returned shape {list(y.shape)}")
    return int(y.shape[1])


class GMLModule(L.LightningModule):
    """The Generative Machine Listener.

    Args:
        backbone: Any module mapping ``[B, 4, 2, bands, T]`` features to ``[B, D]``.
        head: The distribution head (default :class:`~gml.heads.LogisticHead`).
        augment: Batch augmentations applied, in order, to training batches only, on the
            device the batch is on.
        optimizer: Factory ``params → optimizer`` (default Adam, lr 1e-4 as in the paper).

    The training loss is the head's loss on ``batch["target"]``: individual listener scores for
    a GML head, per-stimulus means for the non-GML :class:`~gml.heads.PointHead`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: DistributionHead | None = None,
        augment: Sequence[BatchAugment] | None = None,
        optimizer: OptimizerCallable | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else LogisticHead()
        self.head.build(infer_out_features(backbone))
        self.augment = list(augment or [])
        self.optimizer_factory = optimizer
        self._test_metrics = nn.ModuleDict()
        self._test_records: list[dict[str, Tensor]] = []
        self.test_sets: list[str] = []

    @property
    def train_target(self) -> str:
        """What the head trains on: ``"scores"`` (individual) or ``"mean"``."""
        return self.head.target

    def forward(self, features: Tensor):
        """Score distribution of each stimulus.

        Shape:
            features: ``[B, 4, 2, bands, T]`` → distribution with batch shape ``[B]``.
        """
        return self.head(self.backbone(features))

    # -- training -------------------------------------------------------------------------

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.augment and self._trainer is not None and self._trainer.training:
            for aug in self.augment:
                batch = aug(batch)
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        dist = self(batch["features"])
        loss = self.head.loss(dist, batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def _evaluate(self, batch: dict) -> dict[str, Tensor]:
        dist = self(batch["features"])
        scores, mask = batch["scores"], batch["mask"]
        subj = stimulus_stats(scores, mask)
        n = subj.n
        pred_std = dist.stddev
        nll_each = -dist.log_prob(scores.transpose(0, 1)).transpose(0, 1)
        return {
            "index": batch["index"],
            "pred_mean": dist.mean,
            "pred_std": pred_std,
            "pred_ci": ci_halfwidth(pred_std, n),
            "subj_mean": subj.mean,
            "subj_ci": subj.ci95,
            "n_listeners": n,
            "nll": nll_each[mask],
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

    def on_test_start(self) -> None:
        dm = self.trainer.datamodule
        self.test_sets = list(getattr(dm, "test_sets", [])) or [
            f"test{i}" for i in range(len(self.trainer.test_dataloaders))
        ]
        self._test_metrics = nn.ModuleDict(
            {str(i): metric_collection().to(self.device) for i in range(len(self.test_sets))}
        )
        self._test_records = []

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        out = self._evaluate(batch)
        metrics = self._test_metrics[str(dataloader_idx)]
        metrics.update(**{k: out[k] for k in UPDATE_KWARGS})
        self._test_records.append(
            {
                "index": out["index"].cpu(),
                "pred_mean": out["pred_mean"].detach().cpu(),
                "pred_std": out["pred_std"].detach().cpu(),
                "pred_ci": out["pred_ci"].detach().cpu(),
            }
        )

    def on_test_epoch_end(self) -> None:
        results = {}
        for i, name in enumerate(self.test_sets):
            values = self._test_metrics[str(i)].compute()
            results[name] = {k: float(v) for k, v in values.items()}
            for k, v in values.items():
                self.log(f"test/{name}/{k}", v, add_dataloader_idx=False)
        self.test_results = results

    def test_predictions(self) -> dict[str, Tensor]:
        """Per-stimulus predictions of the last test run, concatenated over all test sets."""
        if not self._test_records:
            return {}
        return {k: torch.cat([r[k] for r in self._test_records]) for k in self._test_records[0]}

    # -- prediction -----------------------------------------------------------------------

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        dist = self(batch["features"])
        return {
            "index": batch["index"].cpu(),
            "pred_mean": dist.mean.cpu(),
            "pred_std": dist.stddev.cpu(),
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-4)
        return self.optimizer_factory(self.parameters())

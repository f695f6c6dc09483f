"""Evaluation as library code: per-test-set metrics (over all stimuli and, when roles are
known, over the systems under test), the baselines of :mod:`gml.baselines`, ``metrics.json``,
``predictions.csv``, ``pit.csv``, ``baselines.csv`` and plots.

:class:`TestReport` is a Lightning callback: ``Trainer(callbacks=[TestReport()]).test(model,
datamodule)`` in a notebook writes the same files as ``gml test`` (which attaches one, as
:func:`evaluate` and ``gml cv`` do). :func:`evaluate` runs it on a checkpoint in one call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from gml import baselines as base
from gml import report
from gml.cpu_inference import CpuInferenceTrunk
from gml.data.manifest import subset_masks
from gml.metrics import UPDATE_KWARGS, metric_collection
from gml.quiet import quiet_lightning
from gml.stats import STIMULUS_KEY

__all__ = ["Evaluation", "TestReport", "coverage_metrics", "evaluate", "test_output_dir"]

#: Central-interval levels whose coverage by individual scores goes into ``metrics.json``.
COVERAGE_LEVELS = (0.5, 0.9)


def test_output_dir(trainer: Trainer, pl_module: LightningModule) -> Path:
    """Where a test run's reports go.

    Beside the checkpoint that was tested (``trainer.test(ckpt_path=...)``, or a module from
    :func:`gml.checkpoint.load_module`): ``<run>/test-<ckpt stem>/``, with the manifest's name
    appended when it is not the one the checkpoint was trained on (so the checkpoint's own
    results stay). Otherwise ``<log_dir>/test/``.
    """
    from gml.checkpoint import read_config
    from gml.data.datamodule import GMLDataModule

    ckpt = trainer.ckpt_path or getattr(pl_module, "checkpoint_path", None)
    if not ckpt or not os.path.isfile(ckpt):
        return Path(trainer.log_dir or trainer.default_root_dir or ".").resolve() / "test"
    ckpt = Path(ckpt).resolve()
    out = ckpt.parent / f"test-{ckpt.stem}"
    dm = trainer.datamodule
    tested = getattr(dm, "manifest_arg", None)
    config = getattr(pl_module, "checkpoint_config", None) or read_config(ckpt)
    trained_on = (config.get("data") or {}).get("manifest")
    if tested is not None and trained_on is not None:
        if not GMLDataModule.same_source(trained_on, tested):
            out = out.with_name(f"{out.name}-{dm.source_name}")
    return out


def coverage_metrics(pit: np.ndarray) -> dict[str, float]:
    """``coverage_50`` / ``coverage_90``: the share of individual scores inside the predicted
    central 50 % / 90 % interval (see :func:`gml.plots.central_coverage`)."""
    from gml.plots import central_coverage

    table = central_coverage(np.asarray(pit, dtype=float), COVERAGE_LEVELS)
    return {
        f"coverage_{round(lv * 100)}": float(c) for lv, c in zip(table["level"], table["coverage"])
    }


@dataclass
class Evaluation:
    """What one test run produced.

    Attributes:
        results: ``{test set: {metric: value}}`` (the paper's Table I columns, NLL,
            ``constant_nll``, ``n_stimuli``, ``coverage_50`` / ``coverage_90``...); with roles
            in the manifest also ``<test>:systems`` rows (no hidden reference, no anchors).
        baselines: ``{test set: {baseline: {metric: value}}}`` for the same rows: the condition
            oracle, the constant spread and the noise ceiling (see :mod:`gml.baselines`).
        out_dir: The folder the files were written to (None when nothing was written).
        files: The files written (``metrics.json``, ``predictions.csv``, ``pit.csv``, plots).
        predictions: The per-stimulus table of ``predictions.csv``.
        synthetic_demo: The listening test is the built-in demo (simulated listeners).
    """

    results: dict[str, dict[str, float]] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    predictions: pd.DataFrame | None = None
    synthetic_demo: bool = False


class TestReport(Callback):
    """Per-test-set metrics and report files for ``trainer.test``.

    One torchmetrics collection per test set (the data module's ``test_sets``, one per test
    dataloader) is updated from :meth:`GMLModule.test_step`'s outputs and logged as
    ``test/<set>/<metric>``. With a :class:`~gml.data.GMLDataModule` the callback also writes,
    on the global-zero rank, ``metrics.json`` (with the NLL of a constant distribution fitted to
    the training scores as a baseline), ``predictions.csv`` (one row per stimulus), ``pit.csv``
    (the predicted CDF at every individual test score) and PNG plots per test set; plots are
    also logged as images to a TensorBoard or wandb logger.

    Args:
        out_dir: Output folder; default :func:`test_output_dir`.
        plots: Write (and log) the PNG plots.

    After the run, :attr:`evaluation` holds the results (an :class:`Evaluation`).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, out_dir: str | os.PathLike | None = None, plots: bool = True):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.plots = plots
        self.evaluation = Evaluation()
        self._metrics: list = []
        self._records: list[dict[str, torch.Tensor]] = []
        self._names: list[str] = []

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = trainer.datamodule
        n_loaders = len(trainer.test_dataloaders or [])
        self._names = list(getattr(dm, "test_sets", [])) or [f"test{i}" for i in range(n_loaders)]
        self._metrics = [metric_collection().to(pl_module.device) for _ in self._names]
        self._records = []
        self.evaluation = Evaluation()

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(outputs, dict):
            return
        self._metrics[dataloader_idx].update(**{k: outputs[k] for k in UPDATE_KWARGS})
        rec = {
            k: outputs[k].detach().float().cpu()
            for k in ("pred_mean", "pred_mean_raw", "pred_std", "pred_ci", "pred_model_std")
            if k in outputs
        }
        rec["index"] = outputs["index"].cpu()
        rec["clamped"] = outputs["clamped"].cpu()
        rec["pit"] = outputs["pit"].detach().float().cpu()
        if "nll_panel" in outputs:
            rec["nll_panel"] = outputs["nll_panel"].detach().float().cpu()
        rec["set"] = torch.full_like(rec["index"], dataloader_idx)
        self._records.append(rec)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        results: dict[str, dict[str, float]] = {}
        for name, metrics in zip(self._names, self._metrics):
            values = metrics.compute()
            results[name] = {k: float(v) for k, v in values.items()}
            for k, v in values.items():
                pl_module.log(f"test/{name}/{k}", v, add_dataloader_idx=False)
        self.evaluation = Evaluation(results=results)
        dm = trainer.datamodule
        if trainer.world_size > 1:  # every rank scored its own share of the stimuli
            self._records = _gather(self._records)
        if not trainer.is_global_zero or not self._records or not hasattr(dm, "stimuli"):
            return
        self._write(trainer, pl_module, dm, results)

    # -- reports ---------------------------------------------------------------------------

    def _write(self, trainer: Trainer, pl_module: LightningModule, dm, results: dict) -> None:
        stimuli, ratings = dm.stimuli, dm.manifest.ratings
        preds = {
            k: torch.cat([r[k] for r in self._records]).numpy()
            for k in ("index", "pred_mean", "pred_std", "pred_ci")
        }
        frame = report.predictions_frame(stimuli, preds, ratings)
        # per-stimulus columns beside the predicted CI (predictions.csv is sorted by stimulus)
        extra = pd.DataFrame(stimuli.reset_index(drop=True).loc[preds["index"], list(STIMULUS_KEY)])
        extra["clamped"] = torch.cat([r["clamped"] for r in self._records]).numpy()
        if all("pred_mean_raw" in r for r in self._records):
            # the head's own mean before it is clamped to the scale (how a head behaves at 100)
            extra["predicted_mean_raw"] = torch.cat([r["pred_mean_raw"] for r in self._records])
        model_std = torch.cat([r["pred_model_std"] for r in self._records]).numpy()
        if np.isfinite(model_std).any():  # an ensemble: its members' disagreement too
            extra["predicted_model_std"] = model_std
        cols = list(frame.columns)
        at = cols.index("predicted_ci95") + 1
        frame = frame.merge(extra, on=list(STIMULUS_KEY), how="left")
        added = [c for c in ("predicted_model_std", "clamped", "predicted_mean_raw") if c in extra]
        frame = frame[cols[:at] + added + cols[at:]]
        pit = self._pit_frame(stimuli, ratings)
        # the systems under test apart from the hidden reference and anchors, when known
        for name, row in base.subset_results(frame, pit).items():
            if name not in results:
                results[name] = row
        results = {k: results[k] for k in sorted(results, key=lambda k: k.partition(":")[::2])}
        test_index = np.flatnonzero((stimuli["partition"] == "test").to_numpy())
        baseline_frame = base.baseline_predictions(stimuli, test_index)
        baselines = base.baseline_results(baseline_frame, frame, pit)
        for name in results:
            test, _, subset = name.partition(":")
            in_subset = self._subset_mask(stimuli, subset or "all")
            part = stimuli["partition"].to_numpy()
            train_keys = stimuli.loc[(part == "train") & in_subset, list(STIMULUS_KEY)]
            test_keys = stimuli.loc[
                (part == "test") & in_subset & (stimuli["test"] == test).to_numpy(),
                list(STIMULUS_KEY),
            ]
            train_scores = ratings.merge(train_keys, on=list(STIMULUS_KEY))["score"].to_numpy()
            test_scores = ratings.merge(test_keys, on=list(STIMULUS_KEY))["score"].to_numpy()
            results[name]["constant_nll"] = report.constant_baseline_nll(train_scores, test_scores)
            results[name]["n_stimuli"] = int(len(test_keys))
            scores = pit.merge(test_keys, on=list(STIMULUS_KEY))
            results[name].update(coverage_metrics(scores["pit"]))
        out_dir = (self.out_dir or test_output_dir(trainer, pl_module)).resolve()
        ckpt = trainer.ckpt_path or getattr(pl_module, "checkpoint_path", None)
        files = [
            out_dir / "metrics.json",
            out_dir / "predictions.csv",
            out_dir / "pit.csv",
            out_dir / "baselines.csv",
        ]
        report.write_json(
            files[0],
            {
                # row name for `gml table`: <run's parent>/<run>, e.g. demo/version_0
                "name": "/".join(out_dir.parent.parts[-2:]),
                "checkpoint": str(Path(ckpt).resolve()) if ckpt else None,
                "members": getattr(pl_module, "member_paths", None),
                "manifest": str(dm.manifest_path()),
                "synthetic_demo": dm.is_synthetic_demo,
                "test_sets": results,
                "baselines": baselines,
            },
        )
        report.atomic_write_text(files[1], frame.to_csv(index=False, float_format="%.4f"))
        report.atomic_write_text(files[2], pit.to_csv(index=False, float_format="%.5f"))
        report.atomic_write_text(files[3], baseline_frame.to_csv(index=False, float_format="%.4f"))
        if self.plots:
            files += self._plots(trainer, frame, pit, out_dir)
        self.evaluation = Evaluation(
            results, baselines, out_dir, files, frame, synthetic_demo=dm.is_synthetic_demo
        )

    @staticmethod
    def _subset_mask(stimuli: pd.DataFrame, subset: str) -> np.ndarray:
        masks = subset_masks(stimuli["role"] if "role" in stimuli else None)
        return masks.get(subset, np.ones(len(stimuli), dtype=bool))

    def _pit_frame(self, stimuli: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
        """One row per individual test score: the stimulus key, the score, its PIT and its NLL
        under the model."""
        key = list(STIMULUS_KEY)
        idx = torch.cat([r["index"] for r in self._records]).numpy()
        width = max(r["pit"].shape[1] for r in self._records)

        def panel(name: str) -> np.ndarray:
            return torch.cat(
                [
                    torch.nn.functional.pad(r[name], (0, width - r[name].shape[1]), value=np.nan)
                    for r in self._records
                ]
            ).numpy()

        n = stimuli["n_listeners"].to_numpy()[idx]
        # a stimulus's scores, in the order the data module put them into its batch
        scores = [g.to_numpy(dtype=float) for _, g in ratings.groupby(key, sort=True)["score"]]
        rows = stimuli.iloc[np.repeat(idx, n)][key].reset_index(drop=True)
        rows["score"] = np.concatenate([scores[i] for i in idx]) if len(idx) else []
        real = np.arange(width)[None, :] < n[:, None]
        rows["pit"] = panel("pit")[real]
        if all("nll_panel" in r for r in self._records):
            rows["nll"] = panel("nll_panel")[real]
        return rows

    def _plots(self, trainer: Trainer, frame: pd.DataFrame, pit: pd.DataFrame, out_dir: Path):
        from gml import plots

        saved = plots.save_test_set_plots(frame, pit, out_dir)
        if trainer.logger is not None:
            plots.log_plots(trainer.logger, saved, step=trainer.global_step)
        return [p for per_set in saved.values() for p in per_set.values()]


def _gather(records: list[dict]) -> list[dict]:
    """All ranks' records, on every rank (CPU tensors, via ``all_gather_object``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return records
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, records)
    return [r for part in parts for r in part]


@quiet_lightning()  # no Lightning banner or by-design warnings, as with `gml test`
def evaluate(
    model,
    manifest: str | None = None,
    *,
    test_all: bool | None = None,
    out_dir: str | os.PathLike | None = None,
    accelerator: str = "auto",
    progress: bool = False,
    plots: bool = True,
    **data_overrides: Any,
) -> Evaluation:
    """Test a trained listener and write its reports, as ``gml test --ckpt`` does.

    Args:
        model: A checkpoint path (file or run folder), a :class:`~gml.module.GMLModule`
            from :func:`gml.checkpoint.load_module`, or a list of checkpoints tested as one
            ensemble (see :mod:`gml.ensemble`; the data module is the first member's).
        manifest: Evaluate on this manifest instead of the checkpoint's own test partition
            (with ``test_all=True``, every stimulus of it is a test stimulus).
        test_all: See :class:`~gml.data.GMLDataModule`.
        out_dir: Report folder; default beside the checkpoint (see :func:`test_output_dir`).
        accelerator: Lightning accelerator (``"auto"``: the GPU when there is one).
        progress: Show progress bars.
        plots: Write the PNG plots.
        **data_overrides: Other :class:`~gml.data.GMLDataModule` arguments (``eval_batch_size``,
            ``cache_dir``...).

    Returns:
        The :class:`Evaluation` (metrics per test set, output folder, files, predictions).
    """
    from gml.checkpoint import build_datamodule, load_module, resolve_checkpoint

    if isinstance(model, (list, tuple)) and len(model) == 1:
        model = model[0]
    if isinstance(model, (list, tuple)):
        from gml.ensemble import EnsembleModule, load_members

        model = EnsembleModule(load_members(model))
        data_from = model.member_paths[0]
        if out_dir is None:
            # beside the members' run folders: <their common folder>/test-ensemble<M>
            parents = [os.path.dirname(os.path.dirname(p)) for p in model.member_paths]
            out_dir = Path(os.path.commonpath(parents)) / f"test-ensemble{len(model.members)}"
    else:
        if not isinstance(model, LightningModule):
            model = load_module(resolve_checkpoint(model))
        if model.checkpoint_path is None:
            raise ValueError("evaluate() needs a module loaded from a checkpoint (gml.checkpoint)")
        data_from = model.checkpoint_path
    overrides = dict(data_overrides, progress=progress, train_target=model.train_target)
    if manifest is not None:
        overrides["manifest"] = str(manifest)
    if test_all is not None:
        overrides["test_all"] = test_all
    dm = build_datamodule(data_from, frontend=model.frontend, **overrides)
    callback = TestReport(out_dir=out_dir, plots=plots)
    trainer = Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=[callback, CpuInferenceTrunk()],  # on CPU, the listener's inference network
    )
    trainer.test(model, datamodule=dm, verbose=False)
    return callback.evaluation

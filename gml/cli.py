"""The ``gml`` command: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI) with
``--ckpt`` to evaluate a trained run with no other argument."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from gml.atomic import atomic_write_text
from gml.data.datamodule import BUILTIN_DEMO, GMLDataModule
from gml.errors import GMLError
from gml.module import GMLModule

#: Key under which a checkpoint carries the resolved configuration it was trained with.
CONFIG_KEY = "gml_config"
EVAL_SUBCOMMANDS = ("validate", "test", "predict")


class EmbedConfig(Callback):
    """Stores the resolved run configuration (YAML text) inside every checkpoint, so that
    ``gml test --ckpt`` and :func:`gml.listener.load_module` rebuild the exact model."""

    def __init__(self, config_yaml: str):
        self.config_yaml = config_yaml

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config_yaml


def _same_manifest(a: str, b: str) -> bool:
    if BUILTIN_DEMO in (a, b):
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def run_folder(trainer: Trainer) -> Path:
    """The folder of this run: the CSV/TensorBoard logger's version folder, or
    ``save_dir/name/version`` for other loggers (whose ``log_dir`` is just ``save_dir``)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logger = trainer.logger
    if logger is None or isinstance(logger, (CSVLogger, TensorBoardLogger)):
        return Path(trainer.log_dir or os.getcwd()).resolve()
    parts = [str(p) for p in (logger.name, logger.version) if p]
    return Path(logger.save_dir or os.getcwd(), *parts).resolve()


class GMLCLI(LightningCLI):
    """LightningCLI with gml's defaults: best/last checkpoints and the config in the run
    folder, CSV logging, Adam 1e-4, and test reports written beside the checkpoint."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any):
        super().__init__(
            GMLModule,
            GMLDataModule,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            trainer_defaults={
                "logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs", "name": "gml"},
                },
            },
            # errors come back as exceptions so that main() reports them as one line
            parser_kwargs={
                "description": "Generative Machine Listener: MUSHRA score distributions from audio pairs.",
                "exit_on_error": False,
            },
            args=args,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
                "model.optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4}},
            }
        )

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            # a constructor rejected a configured value (e.g. an unknown preset)
            raise GMLError(f"invalid configuration: {err}") from err

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand != "fit":
            # only training writes a run folder; evaluating must not drop config.yaml in cwd
            trainer.callbacks = [
                c for c in trainer.callbacks if not isinstance(c, SaveConfigCallback)
            ]
        return trainer

    # -- fit ------------------------------------------------------------------------------

    def before_fit(self) -> None:
        run_dir = run_folder(self.trainer)
        config_yaml = self._config_yaml()
        for cb in self.trainer.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(run_dir)
            if isinstance(cb, SaveConfigCallback):
                cb.save_to_log_dir = False  # written below, into the run folder, atomically
        if self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            if self.trainer.logger is not None:
                self.trainer.logger.experiment  # noqa: B018 - let the logger create its folder first
            atomic_write_text(run_dir / "config.yaml", config_yaml)
        self.trainer.callbacks.append(EmbedConfig(config_yaml))

    def _config_yaml(self) -> str:
        parser = self._parser(self.subcommand)
        cfg = yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False))
        cfg.pop("config", None)
        cfg.pop("ckpt_path", None)
        data = cfg.get("data") or {}
        # paths must mean the same thing when the checkpoint is used from another folder
        if data.get("manifest") and data["manifest"] != BUILTIN_DEMO:
            data["manifest"] = str(Path(data["manifest"]).expanduser().resolve())
        if data.get("cache_dir"):
            data["cache_dir"] = str(Path(data["cache_dir"]).expanduser().resolve())
        return yaml.safe_dump(cfg, sort_keys=False)

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero or self.trainer.fast_dev_run:
            return
        ckpt = self.trainer.checkpoint_callback
        run_dir = Path(
            ckpt.dirpath if ckpt is not None and ckpt.dirpath else (self.trainer.log_dir or ".")
        )
        best = ckpt.best_model_path if ckpt is not None else ""
        lines = [f"gml: run folder {run_dir}"]
        if best:
            score = ckpt.best_model_score
            lines.append(
                f"  best.ckpt  {best}"
                + (f"  ({ckpt.monitor} = {float(score):.4f})" if score is not None else "")
            )
        if ckpt is not None and ckpt.last_model_path:
            lines.append(f"  last.ckpt  {ckpt.last_model_path}")
        if (run_dir / "config.yaml").is_file():
            lines.append(f"  config     {run_dir / 'config.yaml'}")
        if best:
            lines.append(f"next: gml test --ckpt {shlex.quote(best)}")
        print("\n".join(lines), flush=True)

    # -- test -----------------------------------------------------------------------------

    def test(self, **kwargs: Any) -> None:
        # gml prints its own per-test-set table (after_test); Lightning's would repeat it.
        self.trainer.test(**{**kwargs, "verbose": False})

    def after_test(self) -> None:
        if not self.trainer.is_global_zero:
            return
        from gml import report

        model: GMLModule = self.model
        dm: GMLDataModule = self.datamodule
        results = getattr(model, "test_results", {})
        preds = {k: v.numpy() for k, v in model.test_predictions().items()}
        if not results or not preds:
            return
        stimuli = dm.stimuli
        ratings = dm.manifest.ratings
        train_keys = stimuli.loc[stimuli["partition"] == "train", ["test", "item", "condition"]]
        train_scores = ratings.merge(train_keys, on=["test", "item", "condition"])[
            "score"
        ].to_numpy()
        for name in results:
            test_keys = stimuli.loc[
                (stimuli["partition"] == "test") & (stimuli["test"] == name),
                ["test", "item", "condition"],
            ]
            test_scores = ratings.merge(test_keys, on=["test", "item", "condition"])[
                "score"
            ].to_numpy()
            results[name]["constant_nll"] = report.constant_baseline_nll(train_scores, test_scores)
            results[name]["n_stimuli"] = int(len(test_keys))
        frame = report.predictions_frame(stimuli, preds, ratings)
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if ckpt_path:
            out_dir = Path(ckpt_path).resolve().parent / f"test-{Path(ckpt_path).stem}"
            trained_on = config_from_checkpoint(ckpt_path).get("data", {}).get("manifest")
            if trained_on and not _same_manifest(trained_on, dm.manifest_arg):
                # another listening test: keep the checkpoint's own results
                stem = (
                    Path(dm.manifest_arg).parent.name if dm.manifest_arg != BUILTIN_DEMO else "demo"
                )
                out_dir = out_dir.with_name(f"{out_dir.name}-{stem}-{Path(dm.manifest_arg).stem}")
        else:
            out_dir = Path(self.trainer.log_dir or ".") / "test"
        report.write_json(
            out_dir / "metrics.json",
            {
                # row name for `gml table`: <run's parent>/<run>, e.g. demo/version_0
                "name": "/".join(out_dir.parent.parts[-2:]),
                "checkpoint": str(Path(ckpt_path).resolve()) if ckpt_path else None,
                "manifest": str(dm.manifest_path()),
                "synthetic_demo": dm.manifest_arg == BUILTIN_DEMO,
                "test_sets": results,
            },
        )
        report.atomic_write_text(
            out_dir / "predictions.csv", frame.to_csv(index=False, float_format="%.4f")
        )
        print()
        if dm.manifest_arg == BUILTIN_DEMO:
            print("Built-in demo listening test (SYNTHETIC listeners, not human data)")
        print(report.format_table(results, extra={"const NLL": "constant_nll"}))
        excluded = {
            n: int(r.get("ci_excluded", 0)) for n, r in results.items() if r.get("ci_excluded", 0)
        }
        if excluded:
            print(
                "stimuli without a CI (fewer than 2 listeners), excluded from CI columns: "
                + ", ".join(f"{n}: {c}" for n, c in excluded.items())
            )
        print(
            f"gml: wrote {out_dir / 'metrics.json'} and {out_dir / 'predictions.csv'}", flush=True
        )

    def after_predict(self) -> None:
        if not self.trainer.is_global_zero:
            return
        from gml import report
        from gml.stats import ci_halfwidth

        outputs = self.trainer.predict_loop.predictions
        if not outputs:
            return
        if isinstance(outputs[0], list):
            outputs = [o for group in outputs for o in group]
        preds = {k: torch.cat([o[k] for o in outputs]).numpy() for k in outputs[0]}
        stimuli = self.datamodule.stimuli
        n = stimuli["n_listeners"].to_numpy()[preds["index"]]
        preds["pred_ci"] = ci_halfwidth(preds["pred_std"], n)
        frame = report.predictions_frame(
            stimuli, preds, self.datamodule.manifest.ratings, with_partition=True
        )
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        base = Path(ckpt_path).resolve().parent if ckpt_path else Path(self.trainer.log_dir or ".")
        out = base / f"predict-{Path(ckpt_path).stem if ckpt_path else 'model'}" / "predictions.csv"
        report.atomic_write_text(out, frame.to_csv(index=False, float_format="%.4f"))
        print(f"gml: wrote {out} ({len(frame)} stimuli)", flush=True)


def config_from_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """The resolved configuration a gml checkpoint was trained with.

    Raises:
        GMLError: the file is missing, not a checkpoint, or not written by ``gml fit``.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise GMLError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise GMLError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(ckpt, dict) or CONFIG_KEY not in ckpt:
        raise GMLError(
            f"{path}: not a gml checkpoint (no embedded configuration); was it written by 'gml fit'?"
        )
    return yaml.safe_load(ckpt[CONFIG_KEY])


def _pop_option(args: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` / ``flag=VALUE`` from ``args``; return VALUE (None if absent)."""
    for k, a in enumerate(args):
        if a == flag and k + 1 < len(args):
            value = args[k + 1]
            del args[k : k + 2]
            return value
        if a.startswith(flag + "="):
            del args[k]
            return a.split("=", 1)[1]
    return None


def _expand_ckpt(argv: list[str]) -> tuple[list[str], str | None]:
    """Turn ``gml test --ckpt X [...]`` into ``gml test --config <X's config> --ckpt_path X
    --trainer.logger false [...]`` (same for ``--ckpt_path X`` without ``--config``).

    Returns the new argv and a temporary config file for the caller to delete.
    """
    if not argv or argv[0] not in EVAL_SUBCOMMANDS:
        return argv, None
    rest = list(argv[1:])
    ckpt = _pop_option(rest, "--ckpt") or _pop_option(rest, "--ckpt_path")
    if ckpt is None:
        return argv, None
    if any(a == "--config" or a.startswith("--config=") for a in rest):
        return [argv[0], *rest, "--ckpt_path", ckpt], None  # the user's config wins
    cfg = config_from_checkpoint(ckpt)
    cfg.setdefault("trainer", {})["logger"] = False
    cfg.setdefault("checkpoint", {})["dirpath"] = str(Path(ckpt).resolve().parent)
    fd, tmp = tempfile.mkstemp(prefix="gml-ckpt-config-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return [argv[0], "--config", tmp, "--ckpt_path", ckpt, *rest], tmp


_QUIET = (
    # gml applies augmentations in the module on purpose (on the batch's device).
    r".*overridden `on_after_batch_transfer` in `LightningModule`.*",
    # the run folder holds config.yaml and metrics.csv beside the checkpoints by design.
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    # main() hands LightningCLI the (possibly rewritten) argv on purpose.
    r".*LightningCLI's args parameter is intended to run from within Python.*",
)


def quiet_warnings() -> None:
    """Silence the Lightning warnings that gml triggers by design (see ``_QUIET``)."""
    import warnings

    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)


def run(argv: list[str]) -> GMLCLI:
    """Run one LightningCLI subcommand (``--ckpt`` expanded); errors propagate."""
    argv, tmp = _expand_ckpt(list(argv))
    try:
        return GMLCLI(args=argv)
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


EXTRA_COMMANDS = {
    "cv": ("gml.cv", "k-fold cross-validation: one model per fold, pooled metrics per test set"),
    "table": ("gml.table", "Table-I-style comparison of several runs (Markdown / CSV)"),
}


def _one_line(message: str) -> str:
    """Condense jsonargparse's nested multi-line reasons to the informative part."""
    import re

    key = re.match(r'\s*(Parser key "[^"]+"):', message)
    cls = re.search(
        r"Problem with given class_path '([^']+)':\s*(.+?)(?:\n\s*-|\n\s*Given|$)", message, re.S
    )
    if key and cls:
        return f"{key.group(1)}: cannot use class_path '{cls.group(1)}': {' '.join(cls.group(2).split())}"
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gml`` command."""
    quiet_warnings()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("GML_DEBUG")) or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            import importlib

            importlib.import_module(EXTRA_COMMANDS[argv[0]][0]).main(argv[1:])
            return
        if not argv or argv[0] in ("-h", "--help"):
            try:
                run(argv)
            finally:
                print("\nmore commands (see 'gml <command> --help'):")
                for name, (_, text) in EXTRA_COMMANDS.items():
                    print(f"  {name:<8} {text}")
        run(argv)
    except (GMLError, ArgumentError) as err:
        if debug:
            raise
        message = _one_line(str(err))
        if isinstance(err, ArgumentError):
            sub = argv[0] if argv and argv[0] in GMLCLI.subcommands() else ""
            message += f" (see 'gml {sub} --help')".replace("  ", " ")
        print(f"gml: error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("gml: interrupted", file=sys.stderr)
        sys.exit(130)


__all__ = ["CONFIG_KEY", "EmbedConfig", "GMLCLI", "config_from_checkpoint", "main", "run"]

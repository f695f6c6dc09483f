"""Checkpoints written by ``gml fit``: the embedded configuration, and rebuilding from it.

A gml checkpoint is a Lightning checkpoint that also carries the resolved run configuration
(YAML text under :data:`CONFIG_KEY`), so a trained listener can be rebuilt — backbone, head,
*and the gammatone frontend it was trained with* — from the file alone, in Python or by the
command line. Nothing here imports the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from gml.atomic import atomic_write
from gml.checkpoint_file import CONFIG_KEY, instantiate, load_model, read_checkpoint, read_config
from gml.checkpoint_path import resolve_checkpoint
from gml.errors import Interrupted

#: Key under which ``last.ckpt`` carries the run's ``metrics.csv`` as it was when written.
METRICS_KEY = "gml_metrics_csv"

__all__ = [
    "CONFIG_KEY",
    "METRICS_KEY",
    "EmbedConfig",
    "Interrupted",
    "ResumePoint",
    "build_datamodule",
    "load_module",
    "read_checkpoint",
    "read_config",
    "resolve_checkpoint",
]


class EmbedConfig(Callback):
    """Stores the resolved run configuration (YAML text) inside every checkpoint.

    Args:
        config_yaml: The configuration, as ``gml fit`` resolved it (paths absolute).
    """

    def __init__(self, config_yaml: str):
        self.config_yaml = config_yaml

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config_yaml


class ResumePoint(Checkpoint):
    """Owns a run's ``last.ckpt``: a killed or interrupted run resumes from it to the same
    result as an uninterrupted one.

    ``last.ckpt`` (one file, replaced atomically) is written

    * at the end of every training epoch, after validation and after ``best.ckpt`` was
      updated, whatever validation did;
    * during an epoch every ``every_n_steps`` training steps and at least every
      ``every_minutes``, with how far into its epoch the run was;
    * when the process receives SIGINT (Ctrl-C) or SIGTERM (``handle_signals``): after the
      current training batch (after the epoch's validation when the signal comes during the
      epoch's last batch or its validation); the run then stops by raising
      :class:`~gml.errors.Interrupted` (exit status 130 / 143). A second signal stops at once,
      from the ``last.ckpt`` written before.

    The checkpoint also carries the random generators' states (augmentations, dropout) and
    the CSV logger's ``metrics.csv`` as it was then. On resume (``gml fit --resume RUN`` or
    ``trainer.fit(..., ckpt_path=RUN/last.ckpt)`` with the same logger folder) the generators
    are restored, the training sampler (:class:`~gml.data.datamodule.EpochShuffle`) skips the
    examples already trained on in that epoch, and ``metrics.csv`` is put back as it was, so
    that rows logged after the checkpoint are not repeated and the rows before it are kept as
    they were, byte for byte (a column that first appears later is added to every row, as in
    an uninterrupted run).

    A mid-epoch checkpoint is written at the start of the next training batch, when Lightning
    has logged the batch it describes; none is written on the last batch of an epoch or before
    a validation (the end-of-epoch one follows). Epoch-level training metrics (logged by
    Lightning after the epoch's checkpoints) are not covered; gml logs none.

    Args:
        dirpath: The run folder (``gml fit`` sets it).
        every_n_steps: Also write every this many training steps (None: by time only).
        every_minutes: Write at least this often during an epoch (None: only at epoch ends,
            by steps and on signals).
        handle_signals: Stop on SIGINT/SIGTERM as above (main thread only); otherwise a signal
            does what it did before training.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        every_n_steps: int | None = None,
        every_minutes: float | None = 5.0,
        handle_signals: bool = True,
    ):
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps: {every_n_steps}; expected 1 or more (or None)")
        if every_minutes is not None and every_minutes <= 0:
            raise ValueError(f"every_minutes: {every_minutes}; expected > 0 (or None)")
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.every_n_steps = every_n_steps
        self.every_minutes = every_minutes
        self.handle_signals = handle_signals
        #: ``(epoch, global step)`` of the run folder's ``last.ckpt``; None while it has none.
        self.saved: tuple[int, int] | None = None
        self._last_save: float | None = None
        self._position: dict | None = None  # set while the checkpoint is dumped
        self._pending: dict | None = None  # a mid-epoch checkpoint waiting for its batch's log
        self._stop: int | None = None  # the signal received: stop at the next safe point
        self._handlers: dict = {}
        self._restored: dict | None = None
        self._metrics: dict | None = None

    @property
    def path(self) -> Path | None:
        """``dirpath / "last.ckpt"`` (None without a folder)."""
        return None if self.dirpath is None else self.dirpath / "last.ckpt"

    # -- what a checkpoint carries ----------------------------------------------------------

    def state_dict(self) -> dict:
        import random

        import numpy as np

        state = {
            "position": self._position,
            "torch_rng": torch.get_rng_state(),
            # plain Python values: checkpoints stay loadable with torch.load(weights_only=True)
            "numpy_rng": _plain(np.random.get_state()),
            "python_rng": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        self._restored = state

    def on_load_checkpoint(self, trainer: Trainer, pl_module, checkpoint: dict) -> None:
        self._metrics = checkpoint.get(METRICS_KEY)

    # -- resuming ---------------------------------------------------------------------------

    def on_fit_start(self, trainer: Trainer, pl_module) -> None:
        # after the checkpoint's callback states are restored, before the training data are
        # iterated
        position = (self._restored or {}).get("position")
        dm = trainer.datamodule
        if position is not None and dm is not None and hasattr(dm, "resume_skip"):
            dm.resume_skip = position["consumed"] * dm.batch_size
        self._restore_metrics(trainer)
        ckpt_path = getattr(trainer, "ckpt_path", None)
        if self._restored is not None and ckpt_path and self.path is not None:
            if Path(ckpt_path).resolve() == self.path.resolve():
                self.saved = (trainer.current_epoch, trainer.global_step)

    def _restore_metrics(self, trainer: Trainer) -> None:
        """Put the run's ``metrics.csv`` back as the checkpoint recorded it, and let the CSV
        logger go on with its columns (it would otherwise rewrite the file with only the
        columns it has seen itself and lose the rest)."""
        logger = _csv_logger(trainer)
        saved, self._metrics = self._metrics, None
        if logger is None or not trainer.is_global_zero:
            return
        writer = logger.experiment
        path = Path(writer.metrics_file_path)
        if saved and Path(saved["log_dir"]).resolve() == path.parent.resolve():
            atomic_write(path, lambda f: f.write(saved["csv"].encode("utf-8")))
        if path.is_file() and not writer.metrics:
            import csv

            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            writer.metrics_keys = list(header)

    def on_train_start(self, trainer: Trainer, pl_module) -> None:
        import time

        # here, after the first training batches were fetched and before any is augmented:
        # the generators continue exactly as they were when the checkpoint was written
        state, self._restored = self._restored, None
        if state is not None and "torch_rng" in state:
            import random

            import numpy as np

            torch.set_rng_state(state["torch_rng"])
            name, keys, pos, has_gauss, cached = state["numpy_rng"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
            random.setstate(_tuples(state["python_rng"]))
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        self._last_save = time.monotonic()
        self._stop = None
        self._install_handlers()

    # -- writing ----------------------------------------------------------------------------

    def on_train_batch_start(self, trainer: Trainer, pl_module, batch, batch_idx: int) -> None:
        # the previous batch is now logged: its checkpoint and metrics.csv agree
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._write(trainer, pending)
            if self._stop is not None:
                raise self._interrupted(self._stop)

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx) -> None:
        import time

        if self.dirpath is None or trainer.fast_dev_run:
            return
        now = time.monotonic()
        if self._last_save is None:
            self._last_save = now
        by_steps = self.every_n_steps and trainer.global_step % self.every_n_steps == 0
        by_time = self.every_minutes and now - self._last_save >= 60 * self.every_minutes
        if not (by_steps or by_time or self._stop is not None) or not _mid_epoch(trainer):
            return
        self._pending = self._dump(
            trainer, {"epoch": trainer.current_epoch, "consumed": batch_idx + 1}
        )
        self._last_save = now

    def on_train_epoch_end(self, trainer: Trainer, pl_module) -> None:
        import time

        # a Checkpoint callback: Lightning runs this after ModelCheckpoint (best.ckpt) and
        # EarlyStopping, so that their states in last.ckpt are this epoch's
        self._pending = None
        if self.dirpath is not None and not trainer.fast_dev_run:
            self._write(trainer, self._dump(trainer, None))
            self._last_save = time.monotonic()
        if self._stop is not None:
            raise self._interrupted(self._stop)

    def on_train_end(self, trainer: Trainer, pl_module) -> None:
        self._remove_handlers()

    def on_exception(self, trainer: Trainer, pl_module, exception: BaseException) -> None:
        self._pending = None  # the weights it refers to may have changed since
        self._remove_handlers()

    def teardown(self, trainer: Trainer, pl_module, stage: str) -> None:
        self._remove_handlers()

    def _dump(self, trainer: Trainer, position: dict | None) -> dict:
        self._position = position
        try:
            return trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        finally:
            self._position = None

    def _write(self, trainer: Trainer, checkpoint: dict) -> None:
        if not trainer.is_global_zero or self.path is None:
            return
        logger = _csv_logger(trainer)
        if logger is not None:
            logger.save()  # rows Lightning logged so far are in the file
            path = Path(logger.experiment.metrics_file_path)
            if path.is_file():
                checkpoint[METRICS_KEY] = {
                    "log_dir": str(path.parent.resolve()),
                    "csv": path.read_bytes().decode("utf-8"),
                }
        atomic_write(self.path, lambda f: torch.save(checkpoint, f))
        self.saved = (int(checkpoint["epoch"]), int(checkpoint["global_step"]))

    # -- signals ----------------------------------------------------------------------------

    def _install_handlers(self) -> None:
        import signal
        import threading

        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signum not in self._handlers:
                self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _remove_handlers(self) -> None:
        import signal

        for signum, old in self._handlers.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
        self._handlers = {}

    def _on_signal(self, signum: int, frame) -> None:
        if self._stop is not None:  # a second signal: stop now
            raise self._interrupted(signum)
        self._stop = int(signum)

    def _interrupted(self, signum: int) -> Interrupted:
        self._remove_handlers()
        epoch, step = self.saved if self.saved is not None else (None, None)
        folder = self.dirpath if self.saved is not None else None
        return Interrupted(signum, epoch, step, folder)


def _mid_epoch(trainer: Trainer) -> bool:
    """Whether the batch just trained is neither its epoch's last nor followed by a
    validation: a checkpoint written now resumes with the next batch of the same epoch."""
    loop = trainer.fit_loop.epoch_loop
    progress = loop.batch_progress
    if progress.is_last_batch or progress.current.ready >= trainer.num_training_batches:
        return False
    try:
        return not loop._should_check_val_fx(trainer.fit_loop._data_fetcher)
    except Exception:  # noqa: BLE001 - a Lightning without this method: by batch count alone
        return True


def _csv_logger(trainer: Trainer):
    """The trainer's CSV logger (the one that writes ``metrics.csv``), if any."""
    from lightning.fabric.loggers import CSVLogger

    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            return logger
    return None


def _tuples(value):
    """A Python RNG state read back from a checkpoint (lists) as the tuples it was."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _plain(value):
    """numpy values (a numpy RNG state) as plain Python lists and numbers."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def load_module(ckpt_path: str | os.PathLike, map_location: Any = "cpu"):
    """Rebuild the :class:`~gml.module.GMLModule` (frontend, backbone, head, weights) that a
    checkpoint was trained as.

    Args:
        ckpt_path: ``best.ckpt`` / ``last.ckpt`` of a ``gml fit`` run, or the run folder.
        map_location: Device for the weights.

    Returns:
        The module in eval mode, on ``map_location``.

    Raises:
        GMLError: not a gml checkpoint, or its configuration no longer builds a model (e.g. a
            head or backbone class that cannot be imported: the message names it).
    """
    from gml.module import GMLModule

    return load_model(GMLModule, ckpt_path, map_location)


def build_datamodule(ckpt: str | os.PathLike | dict, **overrides: Any):
    """The :class:`~gml.data.GMLDataModule` a checkpoint was trained with (same manifest,
    folds and seed), with ``overrides`` (e.g. ``manifest=..., test_all=True``) applied.

    The frontend is the model's (see :func:`load_module`); pass ``frontend=module.frontend``.
    """
    from gml.data.datamodule import GMLDataModule

    cfg = read_config(ckpt)
    section = {**(cfg.get("data") or {}), **overrides}
    objects = {k: section.pop(k) for k in ("frontend",) if k in section}
    dm = instantiate(GMLDataModule, "data", section, "checkpoint")
    for k, v in objects.items():
        setattr(dm, k, v)
    return dm

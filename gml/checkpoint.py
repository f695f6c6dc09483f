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
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from gml.checkpoint_path import resolve_checkpoint
from gml.errors import GMLError

#: Key under which a checkpoint carries the resolved configuration it was trained with.
CONFIG_KEY = "gml_config"

__all__ = [
    "CONFIG_KEY",
    "EmbedConfig",
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


class ResumePoint(Callback):
    """Makes a run killed mid-epoch resumable to the same result as an uninterrupted one.

    Writes ``last.ckpt`` into ``dirpath`` (atomically) every ``every_n_steps`` training steps
    and at least every ``every_minutes``; the checkpoint also records how far into its epoch the
    run was and the random number generators' states (augmentations, dropout). On resume
    (``gml fit --resume RUN`` or ``trainer.fit(..., ckpt_path=last.ckpt)``) the generators are
    restored and the training sampler (:class:`~gml.data.datamodule.EpochShuffle`) skips the
    examples already trained on in that epoch.

    Args:
        dirpath: The run folder.
        every_n_steps: Save every this many steps (None: by time only).
        every_minutes: Save at least this often.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        every_n_steps: int | None = None,
        every_minutes: float | None = 10.0,
    ):
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.every_n_steps = every_n_steps
        self.every_minutes = every_minutes
        self._last_save = None
        self._position: dict | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx) -> None:
        import time

        now = time.monotonic()
        if self._last_save is None:
            self._last_save = now
        by_steps = self.every_n_steps and trainer.global_step % self.every_n_steps == 0
        by_time = self.every_minutes and now - self._last_save >= 60 * self.every_minutes
        if (by_steps or by_time) and self.dirpath is not None:
            self._position = {"epoch": trainer.current_epoch, "consumed": batch_idx + 1}
            target = self.dirpath / "last.ckpt"
            tmp = self.dirpath / f".last.ckpt.resume-{os.getpid()}.tmp"
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                os.replace(tmp, target)
            self._position = None
            self._last_save = now

    def state_dict(self) -> dict:
        import random

        import numpy as np

        return {
            "position": self._position,
            "torch_rng": torch.get_rng_state(),
            # plain Python values: checkpoints stay loadable with torch.load(weights_only=True)
            "numpy_rng": _plain(np.random.get_state()),
            "python_rng": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self._restored = state

    def on_fit_start(self, trainer: Trainer, pl_module) -> None:
        # after the checkpoint is restored, before the training data are iterated
        state, self._restored = getattr(self, "_restored", None), None
        position = (state or {}).get("position")
        if position is None:  # an epoch-end checkpoint: nothing to skip
            return
        import random

        import numpy as np

        torch.set_rng_state(state["torch_rng"])
        name, keys, pos, has_gauss, cached = state["numpy_rng"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        random.setstate(state["python_rng"])
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "resume_skip"):
            dm.resume_skip = position["consumed"] * dm.batch_size


def _plain(value):
    """numpy values (a numpy RNG state) as plain Python lists and numbers."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a gml checkpoint as a dict (weights on ``map_location``).

    Raises:
        GMLError: missing, not a readable PyTorch checkpoint, or not written by ``gml fit``.
    """
    path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise GMLError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(ckpt, dict) or CONFIG_KEY not in ckpt:
        raise GMLError(
            f"{path}: not a gml checkpoint (no embedded configuration); was it written by 'gml fit'?"
        )
    return ckpt


def _upgrade(cfg: dict) -> dict:
    """Bring a configuration written by an older gml to today's layout.

    Before the frontend belonged to the model it was configured as ``data.frontend``.
    """
    data = cfg.get("data") or {}
    model = cfg.setdefault("model", {})
    if "frontend" in data:
        old = data.pop("frontend")
        if old is not None and model.get("frontend") is None:
            model["frontend"] = old
    if "train_target" in data:
        data.pop("train_target")  # linked from the head, never configured by hand
    return cfg


def read_config(ckpt: str | os.PathLike | dict) -> dict:
    """The resolved configuration a gml checkpoint was trained with (a plain dict).

    Args:
        ckpt: A checkpoint path (file or run folder), or a dict from :func:`read_checkpoint`.

    Raises:
        GMLError: see :func:`read_checkpoint`.
    """
    if not isinstance(ckpt, dict):
        ckpt = read_checkpoint(ckpt)
    return _upgrade(yaml.safe_load(ckpt[CONFIG_KEY]) or {})


def _instantiate(cls: type, key: str, section: dict, source: str) -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, key, fail_untyped=False)
    try:
        parsed = parser.parse_object({key: section})
        return getattr(parser.instantiate_classes(parsed), key)
    except Exception as err:  # noqa: BLE001 - report any config failure in one line
        raise GMLError(
            f"{source}: cannot rebuild the {key} from its configuration ({err})"
        ) from None


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

    path = resolve_checkpoint(ckpt_path)
    ckpt = read_checkpoint(path, map_location="cpu")
    cfg = read_config(ckpt)
    model = _instantiate(GMLModule, "model", cfg.get("model") or {}, str(path))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise GMLError(f"{path}: weights do not fit the configured model ({err})") from None
    model.checkpoint_path = str(path.resolve())
    model.checkpoint_config = cfg
    return model.to(map_location).eval()


def build_datamodule(ckpt: str | os.PathLike | dict, **overrides: Any):
    """The :class:`~gml.data.GMLDataModule` a checkpoint was trained with (same manifest,
    folds and seed), with ``overrides`` (e.g. ``manifest=..., test_all=True``) applied.

    The frontend is the model's (see :func:`load_module`); pass ``frontend=module.frontend``.
    """
    from gml.data.datamodule import GMLDataModule

    cfg = read_config(ckpt)
    section = {**(cfg.get("data") or {}), **overrides}
    objects = {k: section.pop(k) for k in ("frontend",) if k in section}
    dm = _instantiate(GMLDataModule, "data", section, "checkpoint")
    for k, v in objects.items():
        setattr(dm, k, v)
    return dm

"""Reading a checkpoint written by ``gml fit``: its weights and the configuration it was
trained with (the resolved run configuration, YAML text under :data:`CONFIG_KEY`). Light:
nothing here imports Lightning, so a listener is built from a checkpoint without it.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import yaml

from gml.checkpoint_path import check_checkpoint_file, resolve_checkpoint
from gml.errors import GMLError

#: Key under which a checkpoint carries the resolved configuration it was trained with.
CONFIG_KEY = "gml_config"

__all__ = ["CONFIG_KEY", "instantiate", "read_checkpoint", "read_config"]


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a gml checkpoint as a dict (weights on ``map_location``).

    Raises:
        GMLError: missing, not a readable PyTorch checkpoint, or not written by ``gml fit``.
    """
    path = resolve_checkpoint(path)
    check_checkpoint_file(path)
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


def instantiate(cls: type, key: str, section: dict, source: str) -> Any:
    """``cls`` built from a configuration section (``class_path``/``init_args`` for nested
    objects, as LightningCLI writes them), by jsonargparse.

    Raises:
        GMLError: the section does not build ``cls`` (the message says why, in one line).
    """
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


def load_model(
    cls: type, ckpt_path: str | os.PathLike, map_location: Any = "cpu", drop: tuple = ()
) -> Any:
    """Build ``cls`` from a checkpoint's ``model`` section (without the keys in ``drop``), load
    its weights, and return it in eval mode on ``map_location``, with ``checkpoint_path`` and
    ``checkpoint_config`` set.

    Raises:
        GMLError: not a gml checkpoint, a configuration that no longer builds, or weights that
            do not fit the model exactly (the message names the file).
    """
    path = resolve_checkpoint(ckpt_path)
    ckpt = read_checkpoint(path, map_location="cpu")
    cfg = read_config(ckpt)
    section = {k: v for k, v in (cfg.get("model") or {}).items() if k not in drop}
    model = instantiate(cls, "model", section, str(path))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise GMLError(f"{path}: weights do not fit the configured model ({err})") from None
    model.checkpoint_path = str(path.resolve())
    model.checkpoint_config = cfg
    return model.to(map_location).eval()

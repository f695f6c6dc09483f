"""Reading a checkpoint written by ``gml fit``: its weights and the configuration it was
trained with (the resolved run configuration, YAML text under :data:`CONFIG_KEY`). Light:
nothing here imports Lightning, so a listener is built from a checkpoint without it.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import yaml
from torch import nn

from gml.checkpoint_path import check_checkpoint_file, resolve_checkpoint
from gml.errors import GMLError

#: Key under which a checkpoint carries the resolved configuration it was trained with.
CONFIG_KEY = "gml_config"

__all__ = [
    "CONFIG_KEY",
    "instantiate",
    "load_model",
    "parameters_uninitialised",
    "read_checkpoint",
    "read_config",
]


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


def _build(value: Any) -> Any:
    """Objects of a machine-written section built directly: ``class_path``/``init_args``
    (and ``dict_kwargs``) dicts become instances, lists and dicts are walked, the rest stays."""
    if isinstance(value, dict) and isinstance(value.get("class_path"), str):
        module, _, name = value["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        kwargs = {k: _build(v) for k, v in (value.get("init_args") or {}).items()}
        kwargs.update(value.get("dict_kwargs") or {})
        return cls(**kwargs)
    if isinstance(value, list):
        return [_build(v) for v in value]
    if isinstance(value, dict):
        return {k: _build(v) for k, v in value.items()}
    return value


def instantiate(cls: type, key: str, section: dict, source: str) -> Any:
    """``cls`` built from a configuration section (``class_path``/``init_args`` for nested
    objects, as LightningCLI writes them).

    The resolved section a checkpoint carries is built directly (jsonargparse's parser would
    add about a third of a second to scoring one pair from a fresh process); a section that
    does not build that way — a short form written by hand, a wrong key — goes through
    jsonargparse, which builds what it can and says what is wrong.

    Raises:
        GMLError: the section does not build ``cls`` (the message says why, in one line).
    """
    try:
        return cls(**{k: _build(v) for k, v in section.items()})
    except Exception:  # noqa: BLE001 - jsonargparse decides, and explains a failure
        pass
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


#: The ``torch.nn.init`` functions that modules initialise their parameters with.
_INITS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
)  # fmt: skip
_INIT_LOCK = threading.Lock()


@contextmanager
def parameters_uninitialised() -> Iterator[None]:
    """Modules built inside leave their *parameters* as allocated, not initialised: for a
    model whose weights are loaded next (a strict ``load_state_dict`` overwrites every
    parameter, so nothing uninitialised survives). Random initialisation of the paper-size
    InSE-Net is most of the time its construction takes.

    Buffers are initialised as usual (a non-persistent one is not in the weights), and only
    in the calling thread is anything skipped: another thread building a module meanwhile
    initialises it as usual.
    """
    owner = threading.get_ident()

    def skipping(original):
        def init(tensor, *args, **kwargs):
            if isinstance(tensor, nn.Parameter) and threading.get_ident() == owner:
                return tensor
            return original(tensor, *args, **kwargs)

        return init

    with _INIT_LOCK:  # one patch at a time, always undone in the order made
        originals = {name: getattr(nn.init, name) for name in _INITS}
        for name, fn in originals.items():
            setattr(nn.init, name, skipping(fn))
        try:
            yield
        finally:
            for name, fn in originals.items():
                setattr(nn.init, name, fn)


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
    with parameters_uninitialised():  # every parameter is overwritten just below
        model = instantiate(cls, "model", section, str(path))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise GMLError(f"{path}: weights do not fit the configured model ({err})") from None
    model.checkpoint_path = str(path.resolve())
    model.checkpoint_config = cfg
    return model.to(map_location).eval()

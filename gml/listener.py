"""Load a trained listener from a checkpoint written by ``gml fit``.

This is the one path from a checkpoint to a model that the command line and the Python API
share: the checkpoint carries its resolved configuration, so no YAML is needed.
"""

from __future__ import annotations

import os

import torch
from jsonargparse import ArgumentParser

from gml.errors import GMLError
from gml.module import GMLModule


def load_module(
    ckpt_path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> GMLModule:
    """Rebuild the :class:`GMLModule` (backbone, head, weights) a checkpoint was trained as.

    Args:
        ckpt_path: ``best.ckpt`` / ``last.ckpt`` of a ``gml fit`` run.
        map_location: Device for the weights.

    Returns:
        The module in eval mode.

    Raises:
        GMLError: not a gml checkpoint, or its configuration no longer builds a model.
    """
    from gml.cli import config_from_checkpoint

    cfg = config_from_checkpoint(ckpt_path)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(GMLModule, "model", fail_untyped=False)
    try:
        parsed = parser.parse_object({"model": cfg["model"]})
        model: GMLModule = parser.instantiate_classes(parsed).model
    except Exception as err:  # noqa: BLE001 - report any config failure in one line
        raise GMLError(
            f"{ckpt_path}: cannot rebuild the model from its configuration ({err})"
        ) from None
    state = torch.load(ckpt_path, map_location=map_location, weights_only=False)["state_dict"]
    model.load_state_dict(state)
    return model.to(map_location).eval()

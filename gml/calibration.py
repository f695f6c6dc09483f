"""Post-hoc calibration of the predicted listener spread.

A model's predicted spread can be systematically too wide or too narrow on items it has not
seen (it absorbs its own error, or overfits). One factor ``c`` on the spread, fitted on the
validation stimuli of the model's own training run, corrects that without retraining:

* ``method="ci"`` (the default): the least-squares ``c`` between predicted and subjective
  95 % CI half-widths of the validation stimuli (targets the CI columns directly);
* ``method="nll"``: the ``c`` that minimises the NLL of the individual validation scores
  (a likelihood of the individual ratings).

Both are fitted and reported; the chosen one is stored in a new checkpoint as
``model.spread_factor`` (so every later use — ``gml test``, ``gml predict``, ``gml.load`` —
applies it), together with the fit's figures under :data:`CALIBRATION_KEY`.

For location-scale heads the factor multiplies the scale parameter (exact); other heads are
scaled around their mean by :class:`gml.heads.distributions.SpreadScaled`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from gml.errors import GMLError
from gml.stats import ci_halfwidth

__all__ = ["CALIBRATION_KEY", "MIN_ITEMS", "calibrate", "fit_spread_factors"]

#: Key under which a calibrated checkpoint records how its factor was fitted.
CALIBRATION_KEY = "gml_calibration"
#: Range searched for the factor.
FACTOR_RANGE = (0.2, 5.0)
#: Fewer validation items than this (excerpts; a stimulus is an item under one condition)
#: and the factor is not to be trusted: :func:`calibrate` warns. The stimuli of one item
#: share its audio and its listeners' view of it, so items, not stimuli, are the independent
#: evidence; with a handful of them the factor follows those items rather than the model.
MIN_ITEMS = 5


@torch.inference_mode()
def _validation_outputs(module, datamodule) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Head parameters, padded scores, mask, subjective CIs and stimulus indices (rows of
    ``datamodule.stimuli``) of the validation stimuli."""
    datamodule.setup("validate")
    loader = datamodule.val_dataloader()
    params, scores, masks, subj_ci, index = [], [], [], [], []
    device = next(module.parameters()).device
    for batch in loader:
        raw = module.head.proj(module.backbone(batch["features"].to(device)))
        params.append(raw.float().cpu())
        scores.append(batch["scores"])
        masks.append(batch["mask"])
        subj_ci.append(batch["subj_ci"])
        index.append(batch["index"])
    if not params:
        raise GMLError("calibration needs validation stimuli, and the partition has none")
    width = max(s.shape[1] for s in scores)

    def pad(t: Tensor, value) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return (
        torch.cat(params),
        torch.cat([pad(s, 0.0) for s in scores]),
        torch.cat([pad(m, False) for m in masks]),
        torch.cat(subj_ci),
        torch.cat(index),
    )


def _nll(module, params: Tensor, scores: Tensor, mask: Tensor, factor: float) -> float:
    dist = module.spread_distribution(params, factor)
    lp = dist.log_prob(scores.transpose(0, 1)).transpose(0, 1)
    return float(-lp[mask].mean())


def _ci_rmse(pred_ci: np.ndarray, subj_ci: np.ndarray, factor: float) -> float:
    ok = np.isfinite(pred_ci) & np.isfinite(subj_ci)
    return float(np.sqrt(np.mean((factor * pred_ci[ok] - subj_ci[ok]) ** 2)))


def fit_spread_factors(module, datamodule) -> dict[str, Any]:
    """Fit the spread factor both ways on the validation stimuli.

    Returns:
        ``{"nll": c_nll, "ci": c_ci, "n_items", "n_stimuli", "n_scores", "val_nll": {1,
        c_nll, c_ci}, "val_ci_rmse": {...}}`` — each method's factor, what it rests on
        (validation items, i.e. (test, item) excerpts, stimuli and individual scores) and the
        validation figures with no calibration and with either factor (so the two can be
        compared).
    """
    from scipy.optimize import minimize_scalar

    module.eval()
    params, scores, mask, subj_ci, index = _validation_outputs(module, datamodule)
    stimuli = datamodule.stimuli.iloc[index.numpy()]
    n_items = int(len(stimuli[["test", "item"]].drop_duplicates()))
    n = mask.sum(1)
    base = module.spread_distribution(params, 1.0)
    std = getattr(base, "listener_stddev", base.stddev).double().numpy()
    if not np.isfinite(std).any():
        raise GMLError("calibration needs a head with a spread (the point head has none)")
    pred_ci = ci_halfwidth(std, n.numpy())
    s_ci = subj_ci.double().numpy()
    lo, hi = (math.log(v) for v in FACTOR_RANGE)
    res = minimize_scalar(
        lambda log_c: _nll(module, params, scores, mask, math.exp(log_c)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-4},
    )
    c_nll = float(math.exp(res.x))
    ok = np.isfinite(pred_ci) & np.isfinite(s_ci)
    if not ok.any():
        raise GMLError("calibration by CI needs validation stimuli with 2 or more listeners")
    c_ci = float(np.clip((pred_ci[ok] * s_ci[ok]).sum() / (pred_ci[ok] ** 2).sum(), *FACTOR_RANGE))
    factors = {"none": 1.0, "nll": c_nll, "ci": c_ci}
    return {
        "nll": c_nll,
        "ci": c_ci,
        "n_items": n_items,
        "n_stimuli": int(len(n)),
        "n_scores": int(mask.sum()),
        "val_nll": {k: _nll(module, params, scores, mask, c) for k, c in factors.items()},
        "val_ci_rmse": {k: _ci_rmse(pred_ci, s_ci, c) for k, c in factors.items()},
    }


def calibrate(
    ckpt: str | os.PathLike,
    method: str = "ci",
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Fit the spread factor of a checkpoint on its own validation stimuli and write a
    calibrated copy (``<stem>-calibrated.ckpt`` beside it by default: ``best.ckpt`` →
    ``best-calibrated.ckpt``; a run folder means its ``best.ckpt``).

    Warns (:class:`~gml.errors.GMLWarning`) when the validation partition has fewer than
    :data:`MIN_ITEMS` items: such a factor can make the test figures worse.

    Args:
        ckpt: A ``gml fit`` checkpoint (file or run folder).
        method: ``"ci"`` or ``"nll"`` (both are fitted and reported; this one is stored).
            ``"ci"`` by default: on the real listening tests of ``docs/results-real.md`` its
            factor gave the lower test CI RMSE of the two in every comparison, and the
            ``"nll"`` factor did not reliably lower the test NLL either.
        out: Where to write the calibrated checkpoint.
        progress: Progress bars while computing features.

    Returns:
        The new checkpoint's path and the fit (see :func:`fit_spread_factors`, plus
        ``method`` and ``factor``).
    """
    from gml.atomic import atomic_write
    from gml.checkpoint import (
        CONFIG_KEY,
        build_datamodule,
        load_module,
        read_checkpoint,
        read_config,
        resolve_checkpoint,
    )

    if method not in ("nll", "ci"):
        raise GMLError(f"calibrate: method {method!r}; expected 'nll' or 'ci'")
    path = resolve_checkpoint(ckpt)
    module = load_module(path)
    if module.spread_factor != 1.0:
        raise GMLError(f"{path}: is already calibrated (spread factor {module.spread_factor:g})")
    dm = build_datamodule(path, frontend=module.frontend, progress=progress)
    dm.train_target = module.train_target
    fit = fit_spread_factors(module, dm)
    fit.update(method=method, factor=fit[method], source=str(path.resolve()))
    if fit["n_items"] < MIN_ITEMS:
        import warnings

        from gml.errors import GMLWarning

        warnings.warn(
            f"{path}: the spread factor {fit['factor']:.3f} rests on {fit['n_items']} "
            f"validation item(s) ({fit['n_stimuli']} stimuli), fewer than {MIN_ITEMS}: too "
            "few to trust; check it on held-out data (gml test) before using it",
            GMLWarning,
            stacklevel=2,
        )
    raw = read_checkpoint(path)
    cfg = read_config(raw)
    cfg.setdefault("model", {})["spread_factor"] = fit["factor"]
    raw[CONFIG_KEY] = yaml.safe_dump(cfg, sort_keys=False)
    raw[CALIBRATION_KEY] = fit
    target = Path(out) if out is not None else path.with_name(f"{path.stem}-calibrated.ckpt")
    atomic_write(target, lambda f: torch.save(raw, f))
    return target, fit

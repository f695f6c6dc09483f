"""Small host-to-device transfers that do not make the host wait for the device."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["values_on"]


def values_on(
    device: torch.device, values: Sequence, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """``values`` (numbers, or equal-length rows of numbers) as a tensor on ``device``; to a
    GPU asynchronously, through pinned memory: a plain copy from the host would first wait for
    everything already queued on the device, so the host could not run ahead of it.

    Shape:
        values: ``[n]`` or ``[n, m]`` → a tensor of that shape on ``device``.
    """
    out = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":  # (pin_memory() would first ask CUDA whether it is pinned)
        pinned = torch.empty(out.shape, dtype=dtype, pin_memory=True)
        return pinned.copy_(out).to(device, non_blocking=True)
    return out.to(device)

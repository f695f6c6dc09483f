"""The batch-augmentation contract."""

from __future__ import annotations

from torch import Tensor


class BatchAugment:
    """A training-batch transform applied on the batch's device after transfer.

    Subclasses implement :meth:`__call__`, taking and returning the batch dict (``features``
    ``[B, 4, 2, bands, T]``, ``target`` ``[B]``, ...). Validation and test batches are never
    passed through augmentations (``GMLModule`` applies them only while training).
    """

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError  # abstract

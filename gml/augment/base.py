"""The batch-augmentation contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class BatchAugment(ABC):
    """A training-batch transform applied on the batch's device after transfer.

    Subclasses implement :meth:`__call__`, taking and returning the batch dict (``features``
    ``[B, 4, 2, bands, T]``, ``target`` ``[B]``, ...). Validation and test batches are never
    passed through augmentations (``GMLModule`` applies them only while training).
    """

    @abstractmethod
    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Return the augmented batch (a new dict; input tensors are not modified)."""

"""Training-batch augmentations, composable from YAML as a list (``model.augment``)."""

from gml.augment.base import BatchAugment

__all__ = ["BatchAugment"]

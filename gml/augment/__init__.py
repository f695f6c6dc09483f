"""Training-batch augmentations, composable from YAML as a list (``model.augment``)."""

from gml.augment.base import BatchAugment
from gml.augment.channel_swap import ChannelSwap
from gml.augment.mix import CutMix, MixUp

__all__ = ["BatchAugment", "ChannelSwap", "CutMix", "MixUp"]

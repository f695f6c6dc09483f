"""Lightning's start-up messages and by-design warnings, hidden while library code runs a
trainer for the user (:func:`gml.evaluate`), as the ``gml`` command hides them.

Lightning logs its accelerator lines (``GPU available: ...``) and tips at INFO level and warns
about things gml does on purpose (augmenting in ``on_after_batch_transfer``, a deprecated
check inside Lightning itself). :func:`quiet_lightning` silences exactly those for the
duration of a call and restores the caller's logging levels and warning filters after it:
warnings about the user's input (:class:`~gml.errors.GMLWarning`) and any other warning
still show.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["LIGHTNING_NOISE", "quiet_lightning"]

#: Messages of the Lightning warnings that gml triggers by design (regular expressions).
LIGHTNING_NOISE = (
    # gml applies augmentations in the module on purpose (on the batch's device)
    r".*overridden `on_after_batch_transfer` in `LightningModule`.*",
    # a deprecation inside Lightning's own code, not the user's
    r".*isinstance\(treespec, LeafSpec\).*",
    # evaluating a copied or moved run: the checkpoint's own folder replaces the recorded one
    r".*The dirpath has changed from.*",
)

#: The loggers of Lightning's start-up banner (accelerator lines, tips).
_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's INFO messages and :data:`LIGHTNING_NOISE` inside the block (also
    usable as a decorator); the logging levels and warning filters are restored after it."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for pattern in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            if logger.getEffectiveLevel() < logging.WARNING:
                logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)

"""One progress line for a whole training run, with an ETA over all its epochs.

Lightning's progress bar counts the batches of the current epoch, so a run of many epochs
never says when it will end. :class:`RunProgress` adds a second line under it (below the line
Lightning's validation bar uses, so that the two never draw over each other)::

    Epoch 3: 45%|████▌     | 45/99 [00:30<00:36, 1.50it/s, v_num=0]

    gml fit:  39%|███▉      | 312/800 steps [04:10<06:30, epoch 4/8]

It counts optimizer steps over the run (``trainer.estimated_stepping_batches``: epochs ×
batches per epoch, with ``limit_train_batches``, gradient accumulation and ``max_steps``),
starts at the step a resumed run continues from, and estimates the time left from the
average pace since the run (or its resumption) started, validation included: a pace over the
last few batches would not count the validation epochs still to come. The line appears only
where Lightning's own bar does (``enable_progress_bar``, rank 0).
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["RunProgress"]


class RunProgress(Callback):
    """A progress bar over all the optimizer steps of a ``fit`` run, with an ETA.

    Shown when the trainer has Lightning's TQDM progress bar enabled, on rank 0, below that
    bar's lines (see the module docstring).
    """

    def __init__(self) -> None:
        self._bar = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        shown = trainer.progress_bar_callback
        if not trainer.is_global_zero or not isinstance(shown, TQDMProgressBar):
            return
        if shown.is_disabled:
            return
        from tqdm.auto import tqdm

        total = trainer.estimated_stepping_batches
        self._bar = tqdm(
            total=int(total) if math.isfinite(total) else None,
            initial=trainer.global_step,  # a resumed run continues from its step
            desc="gml fit",
            unit=" steps",
            # below Lightning's epoch bar and the line of its validation bar
            position=2 * shown.process_position + 2,
            smoothing=0.0,  # the average pace since the start: validation included
            dynamic_ncols=True,
            leave=True,
        )
        self._postfix(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self._bar is not None and trainer.global_step > self._bar.n:
            self._postfix(trainer, refresh=False)
            self._bar.update(trainer.global_step - self._bar.n)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._bar is not None:
            self._postfix(trainer)

    def _postfix(self, trainer: Trainer, refresh: bool = True) -> None:
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        self._bar.set_postfix_str(f"epoch {trainer.current_epoch + 1}/{epochs}", refresh=refresh)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._close()

    def _close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

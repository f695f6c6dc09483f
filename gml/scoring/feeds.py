"""Feeds: chunks of prepared pairs, in the order the model should score them.

A feed is iterated by the scoring loop, which runs the model on each :class:`Chunk` as it
comes and calls :meth:`before_pass` before each forward pass; :meth:`close` (also after an
error) stops whatever prepares the pairs. Two kinds:

- :class:`ThreadFeed` prepares pairs one by one with a function (in the caller's thread, or
  in one worker thread while the model scores the pairs already prepared, sharing the
  caller's torch threads through a :class:`~gml.scoring.threads.ThreadBudget`);
- :class:`ProcessFeed` gets batches of pairs read by worker processes
  (:class:`gml.data.pair_audio.PairFeed`) and prepares each batch with a function, on the
  model's device.

Both can be driven by a fake ``prepare`` and a fake model (tests).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gml.scoring.prepared import PreparedPair
from gml.scoring.threads import ThreadBudget

__all__ = ["Chunk", "ProcessFeed", "ThreadFeed"]


@dataclass
class Chunk:
    """Prepared pairs and their positions in the input list."""

    indices: list[int]
    pairs: list[PreparedPair]


class ThreadFeed:
    """Chunks of pairs prepared by ``prepare(reference, coded)``, in input order, at most
    ``chunk_pairs`` at a time (so memory stays bounded).

    With ``prefetch`` and more than one pair, a worker thread prepares the next pairs while
    the caller runs the model on the ones already prepared: each chunk is whatever is ready
    (at least one pair), so the two overlap from the first pair on. Errors are raised in
    order, as without the worker. With a ``budget`` the worker and the model share the
    caller's torch threads (see :class:`~gml.scoring.threads.ThreadBudget`).

    Args:
        prepare: One pair's preparation (e.g. :meth:`gml.scoring.prepare.PairPreparer.pair`).
        references, coded: The pairs' inputs.
        chunk_pairs: Pairs prepared ahead of the model at most.
        prefetch: Prepare in a worker thread.
        budget: The torch threads to share (None: each thread keeps its own count).
    """

    def __init__(
        self,
        prepare: Callable[[Any, Any], PreparedPair],
        references: Sequence,
        coded: Sequence,
        chunk_pairs: int = 16,
        prefetch: bool = True,
        budget: ThreadBudget | None = None,
    ):
        self.prepare = prepare
        self.references, self.coded = list(references), list(coded)
        self.chunk_pairs = max(1, int(chunk_pairs))
        self.prefetch = prefetch and len(self.references) > 1
        self.budget = budget if self.prefetch else None
        self._chunks = self._threaded() if self.prefetch else self._inline()

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def before_pass(self) -> None:
        """Called before each forward pass: the model's share of the torch threads."""
        if self.budget is not None:
            self.budget.model_thread()

    def close(self) -> None:
        """Stop the worker thread and restore the caller's torch threads (also after an
        error, and while the caller keeps a traceback)."""
        self._chunks.close()

    def _inline(self) -> Iterator[Chunk]:
        refs, cods, size = self.references, self.coded, self.chunk_pairs
        for start in range(0, len(refs), size):
            stop = min(start + size, len(refs))
            pairs = [self.prepare(r, c) for r, c in zip(refs[start:stop], cods[start:stop])]
            yield Chunk(list(range(start, stop)), pairs)

    def _threaded(self) -> Iterator[Chunk]:
        refs, cods = self.references, self.coded
        ready: queue.Queue = queue.Queue(maxsize=self.chunk_pairs)
        stop = threading.Event()
        budget = self.budget if self.budget is not None and self.budget.open() else None

        def work() -> None:
            for r, c in zip(refs, cods):
                if budget is not None:
                    budget.preparing_thread(ready.qsize())
                try:
                    item = (self.prepare(r, c), None)
                except BaseException as err:  # handed to the caller, in order
                    item = (None, err)
                finally:
                    if budget is not None:
                        budget.idle()
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or item[1] is not None:
                    return

        worker = threading.Thread(target=work, name="gml-prefetch", daemon=True)
        try:
            worker.start()
            remaining = len(refs)
            while remaining:
                chunk = []
                item = ready.get()  # wait for at least one pair
                while True:
                    pair, err = item
                    if err is not None:
                        raise err
                    chunk.append(pair)
                    remaining -= 1
                    if not remaining or len(chunk) >= self.chunk_pairs:
                        break
                    try:
                        item = ready.get_nowait()  # and take whatever else is ready
                    except queue.Empty:
                        break
                done = len(refs) - remaining
                yield Chunk(list(range(done - len(chunk), done)), chunk)
        finally:
            stop.set()
            if worker.ident is not None:  # (started)
                worker.join()
            if budget is not None:
                budget.close()


class ProcessFeed:
    """Chunks of pairs read by worker processes and prepared a batch at a time, in order of
    length: small batches come from the workers (the first arrives sooner, and a short list
    is shared evenly) and are gathered here until the model has ``batch_size`` windows. A
    pair that cannot be used raises its error (naming the file) when its batch arrives.

    Args:
        reader: The worker processes (:class:`gml.data.pair_audio.PairFeed`; kept by the
            caller from one list to the next).
        prepare_batch: One read batch → its prepared pairs
            (:meth:`gml.scoring.prepare.PairPreparer.batch`).
        references, coded: The pairs' files.
        batch_size: The model's windows per pass.
    """

    def __init__(
        self,
        reader: Any,
        prepare_batch: Callable[[dict], list[PreparedPair]],
        references: Sequence,
        coded: Sequence,
        batch_size: int,
    ):
        self.reader = reader
        self.prepare_batch = prepare_batch
        self.references, self.coded = list(references), list(coded)
        self.batch_size = int(batch_size)
        self._chunks = self._gathered()

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def before_pass(self) -> None:
        """Nothing to share: the workers are other processes."""

    def close(self) -> None:
        """Stop iterating (the reader's processes are kept for the next list)."""
        self._chunks.close()

    def reading_batches(self) -> tuple[float, int]:
        """``(batch_seconds, max_pairs)`` of the workers' batches: about three batches a
        worker, of at most ``batch_size`` pairs of 10 s, and a divisor of it (so that the
        batches gathered for the model fill its passes)."""
        workers = max(1, getattr(self.reader, "num_workers", 1))
        pairs = len(self.references)
        target = max(1, min(self.batch_size, math.ceil(pairs / (3 * workers))))
        per_batch = max(d for d in range(1, target + 1) if self.batch_size % d == 0)
        return 20.0 * per_batch, per_batch

    def _gathered(self) -> Iterator[Chunk]:
        indices: list[int] = []
        prepared: list[PreparedPair] = []
        batches = self.reader.batches(self.references, self.coded, *self.reading_batches())
        for batch in batches:
            for item in batch["pairs"]:
                if "error" in item:
                    raise item["error"]
            indices += [item["index"] for item in batch["pairs"]]
            prepared += self.prepare_batch(batch)
            if sum(len(p.windows) for p in prepared) >= self.batch_size:
                yield Chunk(indices, prepared)
                indices, prepared = [], []
        if prepared:
            yield Chunk(indices, prepared)

"""The torch threads of a caller, shared between a thread that prepares pairs and the model."""

from __future__ import annotations

import functools
import threading

import torch

__all__ = ["ThreadBudget"]


@functools.cache
def _per_thread_counts() -> bool:
    """Whether ``torch.set_num_threads`` sets the calling thread's own count (torch's OpenMP
    backend); with the native or TBB backend the count is the process's."""
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


class ThreadBudget:
    """The calling thread's torch threads, shared on CPU between the model (in the calling
    thread) and one thread that prepares pairs (:class:`~gml.scoring.feeds.ThreadFeed`).

    While the preparing thread computes, it takes one thread when prepared pairs are waiting
    for the model, half of them when the model may be waiting for it; the model takes the
    others (at least one), and all of them when nothing is being prepared. Both at once on
    every core made them compete: threads waiting at the model's synchronisation points spin
    on a core the analysis needs (``docs/performance.md``).

    Counts are per thread with torch's OpenMP backend, so this changes no other running
    thread's; but each change also sets torch's default for threads that start using torch
    later, so one budget at a time shares in a process (:meth:`open` returns False for the
    others, which then leave the counts alone), and :meth:`close` restores the caller's count
    (also as that default).

    Args:
        threads: The threads to share (default: the calling thread's ``torch.get_num_threads()``).
    """

    _lock = threading.Lock()  # one sharing budget at a time in a process

    def __init__(self, threads: int | None = None):
        self.threads = int(threads if threads is not None else torch.get_num_threads())
        #: The threads the preparing thread computes with now (0: it is not computing).
        self.preparing = 0
        self.sharing = False
        self._owner: int | None = None

    def open(self) -> bool:
        """Start sharing, from the thread that runs the model: False (and no sharing) with a
        backend whose counts are per process, or while another budget shares."""
        if not self.sharing and _per_thread_counts() and ThreadBudget._lock.acquire(False):
            self.sharing, self._owner = True, threading.get_ident()
        return self.sharing

    def preparing_thread(self, waiting: int) -> int:
        """Called by the preparing thread before it prepares a pair: sets its own count (one
        when ``waiting`` pairs are ready for the model, else half) and returns it."""
        if not self.sharing:
            return 0
        want = 1 if waiting else max(1, self.threads // 2)
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)
        self.preparing = want
        return want

    def idle(self) -> None:
        """Called by the preparing thread when it has finished a pair."""
        self.preparing = 0

    def model_thread(self) -> int:
        """Called in the model's thread before each forward pass: sets its count to the
        threads the preparing thread does not use, and returns it."""
        if not self.sharing:
            return torch.get_num_threads()
        want = max(1, self.threads - self.preparing)
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)
        return want

    def close(self) -> None:
        """Stop sharing: the model's thread gets its count back (also torch's default for
        new threads). Called from another thread it only releases the budget."""
        if not self.sharing:
            return
        self.sharing, self.preparing = False, 0
        if threading.get_ident() == self._owner:  # (counts are per thread)
            torch.set_num_threads(self.threads)
        ThreadBudget._lock.release()

    @staticmethod
    def busy() -> bool:
        """Whether a budget is sharing in this process now."""
        return ThreadBudget._lock.locked()

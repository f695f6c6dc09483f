"""The scoring pipeline behind :class:`gml.listener.Listener`, one step per module:

1. :mod:`~gml.scoring.prepare` — read, align (:mod:`gml.features.delay`), analyse and pad a
   pair (:mod:`gml.features.pair`) into a :class:`~gml.scoring.prepared.PreparedPair`: its
   analysis windows and the facts its prediction reports;
2. :mod:`~gml.scoring.feeds` — chunks of prepared pairs, from a worker thread
   (:class:`~gml.scoring.feeds.ThreadFeed`, sharing the caller's torch threads through a
   :class:`~gml.scoring.threads.ThreadBudget`) or worker processes
   (:class:`~gml.scoring.feeds.ProcessFeed`);
3. the model — run by the listener on windows of equal length, batched;
4. :mod:`~gml.scoring.statistics` — the windows' mixture per pair, its figures, quantiles and
   simulated panels (pure functions), and :mod:`~gml.scoring.checks` — the warnings;
5. :mod:`~gml.scoring.prediction` — the :class:`~gml.scoring.prediction.Prediction` returned.

The package imports nothing of training (no Lightning); the submodules are imported one by
one, so that the statistics can be used without the audio machinery.
"""

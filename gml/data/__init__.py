"""Listening-test data, in the order it flows into training and evaluation:
:mod:`~gml.data.manifest` (the ratings CSV, checked) → :mod:`~gml.data.datamodule` (stimuli,
folds, batches) → :mod:`~gml.data.cache` (features on disk). Beside them:
:mod:`~gml.data.importers` (listening-test exports → manifests), :mod:`~gml.data.tables`
(reading a user's CSV), :mod:`~gml.data.demo` (the built-in synthetic listening test) and
:mod:`~gml.data.paths` (where generated data lives). Nothing here imports a command."""

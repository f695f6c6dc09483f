"""A listening test with fewer items than folds: one warning from the data module, naming
the test and how many items each partition got."""

from __future__ import annotations

import re
import warnings

import pytest

from gml.data.datamodule import GMLDataModule
from gml.errors import GMLWarning

from .conftest import make_noise_test


def _setup(manifest, tmp_path, **kw) -> tuple[GMLDataModule, list[str]]:
    dm = GMLDataModule(str(manifest), progress=False, cache_dir=str(tmp_path / "cache"), **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    return dm, [str(w.message) for w in caught if issubclass(w.category, GMLWarning)]


def test_three_items_in_five_folds_warn_once_with_the_counts(tmp_path):
    manifest = make_noise_test(tmp_path / "three", items=3)
    dm, messages = _setup(manifest, tmp_path)
    (message,) = [m for m in messages if "folds" in m]
    found = re.search(
        r"'noise-test': 3 items in 5 folds leave (\d) to test, (\d) to validate and (\d) to train",
        message,
    )
    assert found, message
    items = dm.stimuli.drop_duplicates("item")["partition"].value_counts()
    assert [int(x) for x in found.groups()] == [items.get(p, 0) for p in ("test", "val", "train")]
    assert "use fewer folds" in message


@pytest.mark.parametrize("kw", [{}, {"num_folds": 3}, {"test_all": True}])
def test_enough_items_or_no_folds_say_nothing(tmp_path, kw):
    items = 3 if kw else 6
    manifest = make_noise_test(tmp_path / "m", items=items)
    _, messages = _setup(manifest, tmp_path, **kw)
    assert not [m for m in messages if "folds" in m]

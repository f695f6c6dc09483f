"""GMLDataModule: manifest → partitions → per-rating training triplets and per-stimulus
evaluation batches, one test dataloader per listening test."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from gml.data.cache import FeatureCache
from gml.data.manifest import Manifest, ManifestError
from gml.data.paths import default_cache_dir
from gml.features import AudioError, GammatoneFrontend
from gml.features.pair import (
    MAX_LENGTH_DIFFERENCE,
    delay_skips,
    describe_difference,
    length_difference,
    pad_frames,
    stack_pair,
)
from gml.stats import STIMULUS_KEY

BUILTIN_DEMO = "builtin:demo"


def assign_folds(keys: pd.DataFrame, num_folds: int, seed: int) -> np.ndarray:
    """Fold index of each (test, item), shuffled within each test and dealt round-robin, so no
    item is in two folds and every test is spread over all folds.

    Each test draws from its own random stream (seeded by ``seed`` and the test's name), so
    adding or removing another listening test does not move any item to another fold.

    Shape:
        keys: rows of unique (test, item) → ``[len(keys)]`` ints in ``[0, num_folds)``.
    """
    folds = np.empty(len(keys), dtype=np.int64)
    for test, idx in keys.groupby("test", sort=True).indices.items():
        rng = np.random.default_rng([seed, zlib.crc32(str(test).encode())])
        idx = np.asarray(idx)[np.argsort(keys["item"].to_numpy()[idx], kind="stable")]
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = (np.arange(len(idx)) + rng.integers(num_folds)) % num_folds
    return folds


@dataclass
class _Stimuli:
    """Per-stimulus arrays shared by the datasets."""

    table: pd.DataFrame  # Manifest.stimuli() rows, in index order, with delay_samples
    features: dict[tuple[str, int], Tensor]  # (audio path, samples skipped) → [4, bands, T]
    scores: list[np.ndarray]  # per stimulus, its individual scores

    def items(self, i: int) -> tuple[tuple[str, int], tuple[str, int]]:
        """Feature items of stimulus ``i``: the delay is dropped from the later signal."""
        row = self.table.iloc[i]
        ref_skip, cod_skip = delay_skips(int(row["delay_samples"]))
        return (row["reference"], ref_skip), (row["coded"], cod_skip)

    def pair(self, i: int) -> Tensor:
        """``[4, 2, bands, T]`` reference/coded pair of stimulus ``i``."""
        ref_item, cod_item = self.items(i)
        return stack_pair(self.features[ref_item], self.features[cod_item])


class EpochShuffle(Sampler):
    """Shuffles ``n`` examples with a permutation drawn from ``(seed, epoch)`` alone, so a run
    resumed mid-epoch sees the same order as an uninterrupted one, and can skip the examples
    the interrupted run had already trained on (:meth:`skip_next`).

    Args:
        n: Number of examples.
        seed: Seed of the permutations.
    """

    def __init__(self, n: int, seed: int, epoch_of=None):
        self.n, self.seed, self.epoch, self._skip = int(n), int(seed), 0, 0
        # the trainer's epoch when known: restored before the first batch of a resumed run
        self._epoch_of = epoch_of

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at the start of each epoch."""
        self.epoch = int(epoch)

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` examples of the next iteration (a resumed epoch)."""
        self._skip = int(count)

    def __iter__(self):
        epoch = self._epoch_of() if self._epoch_of is not None else self.epoch
        g = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{epoch}".encode()))
        order = torch.randperm(self.n, generator=g).tolist()
        start, self._skip = self._skip, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.n


class ResumableLoader(DataLoader):
    """A DataLoader that tells Lightning it can resume mid-epoch (its sampler skips what was
    trained on, see :class:`gml.checkpoint.ResumePoint`); its own state is empty."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class RatingDataset(Dataset):
    """One example per individual rating: (features, that listener's score)."""

    def __init__(self, stimuli: _Stimuli, index: np.ndarray):
        self.stimuli = stimuli
        self.pairs = [(int(i), float(s)) for i in index for s in stimuli.scores[i]]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        i, score = self.pairs[k]
        return {"features": self.stimuli.pair(i), "target": score, "index": i}


class StimulusDataset(Dataset):
    """One example per stimulus with all its scores (evaluation, and mean-target training)."""

    def __init__(self, stimuli: _Stimuli, index: np.ndarray):
        self.stimuli = stimuli
        self.index = [int(i) for i in index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        i = self.index[k]
        scores = self.stimuli.scores[i]
        row = self.stimuli.table.iloc[i]
        return {
            "features": self.stimuli.pair(i),
            "scores": torch.as_tensor(scores, dtype=torch.float32),
            "target": float(row["mean"]),
            "index": i,
            # the subjective statistics travel with the batch (defined once, in gml.stats)
            "subj_mean": float(row["mean"]),
            "subj_ci": float(row["ci95"]),
            "n_listeners": int(row["n_listeners"]),
        }


def collate_panels(batch: list[dict]) -> dict[str, Tensor]:
    """:func:`collate` for training on whole panels: the target is every listener's score of
    each stimulus (``mask`` marks the real ones), so the network runs once per stimulus.

    Shape:
        as :func:`collate`, with target ``[B, N]``.
    """
    out = collate(batch)
    out["target"] = out["scores"]
    return out


def collate(batch: list[dict]) -> dict[str, Tensor]:
    """Stack examples, zero-padding frames on both sides to the longest of the batch and
    listener scores to the largest panel (``mask`` marks real scores).

    Shape:
        features ``[B, 4, 2, bands, T]``; target ``[B]``; index ``[B]``;
        scores/mask ``[B, N]`` and subj_mean/subj_ci/n_listeners ``[B]`` for whole stimuli.
    """
    t = max(b["features"].shape[-1] for b in batch)
    out = {
        "features": torch.stack([pad_frames(b["features"], t) for b in batch]),
        "target": torch.tensor([b["target"] for b in batch], dtype=torch.float32),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
    }
    if "scores" in batch[0]:
        n = max(len(b["scores"]) for b in batch)
        scores = torch.zeros(len(batch), n)
        mask = torch.zeros(len(batch), n, dtype=torch.bool)
        for k, b in enumerate(batch):
            scores[k, : len(b["scores"])] = b["scores"]
            mask[k, : len(b["scores"])] = True
        out["scores"], out["mask"] = scores, mask
        out["subj_mean"] = torch.tensor([b["subj_mean"] for b in batch], dtype=torch.float32)
        out["subj_ci"] = torch.tensor([b["subj_ci"] for b in batch], dtype=torch.float32)
        out["n_listeners"] = torch.tensor([b["n_listeners"] for b in batch], dtype=torch.long)
    return out


class GMLDataModule(L.LightningDataModule):
    """Streams listening-test ratings to a GML model.

    Partition: items (test, item) are dealt into ``num_folds`` folds per listening test. With
    ``fold_role="test"`` (default, cross-validation) fold ``fold`` is the test partition and
    ``val_fraction`` of the remaining items is validation. With ``fold_role="val"`` (the paper's
    schedule: train/val partitions in turn) fold ``fold`` is validation, the rest is training
    and nothing from the folds is tested. A ``split`` column in the manifest overrides this:
    with ``fold_role="test"`` it decides train / val / test outright; with ``fold_role="val"``
    its ``test`` rows stay the test partition and the other rows are folded.

    Training examples are per-listener (stimulus, score) triplets (``train_on="ratings"``, the
    paper's way), or whole stimuli with all their listeners' scores (``train_on="panels"``):
    the same likelihood, every rating weighing the same, but the network runs once per
    stimulus instead of once per rating. A head whose ``target`` is ``"mean"`` (the non-GML
    baseline) gets one example per stimulus with its mean score either way.
    Validation and test batches hold whole stimuli with all their scores; there is one test
    dataloader per listening test (:attr:`test_sets` names them in order).

    Args:
        manifest: The listening-test source: the path of a manifest CSV, ``"builtin:demo"``
            for the built-in synthetic demo (generated on first use into the cache folder), or
            from Python a :class:`~gml.data.manifest.Manifest` or an importer's result
            (``gml.data.importers``).
        num_folds: Number of item-grouped folds (ignored with a ``split`` column).
        fold: Which fold is held out (for testing, or validation with ``fold_role="val"``).
        fold_role: What the held-out fold is used for: ``"test"`` or ``"val"``.
        test_all: Every stimulus of the manifest is a test stimulus (folds and ``split`` are
            ignored): evaluate a trained model on a listening test kept out of its training,
            e.g. ``gml test --ckpt RUN/best.ckpt --data.manifest other.csv --data.test_all true``.
        val_fraction: Fraction of the non-test items used for validation.
        batch_size: Training batch size: ratings, or stimuli with ``train_on="panels"`` and
            for mean-target heads.
        eval_batch_size: Stimuli per validation/test batch.
        num_workers: DataLoader workers (features are in memory, so 0 is usually fastest).
        seed: Seed of the fold and validation assignment.
        cache_dir: Feature cache folder (default ``$GML_CACHE_DIR`` or ``~/.cache/gml``).
        frontend: The gammatone frontend; must have the model's settings (``gml fit`` links it
            to ``model.frontend``; in Python pass ``frontend=model.frontend``).
        train_target: What training examples carry: ``"scores"`` (one example per individual
            rating) or ``"mean"`` (one per stimulus); the head declares it (``head.target``,
            linked by ``gml fit``; checked against the model when training starts).
        train_on: ``"ratings"`` (one training example per individual rating) or ``"panels"``
            (one per stimulus, with all its ratings).
        align: Estimate each stimulus's codec delay and remove it before the features, as
            the listener does when it scores audio (reported as ``delay_ms``).
        demo_items: Items of the built-in demo per test (music, speech); ignored otherwise.
        progress: Progress bars while building the demo and computing features.
    """

    def __init__(
        self,
        manifest: str = BUILTIN_DEMO,
        num_folds: int = 5,
        fold: int = 0,
        fold_role: Literal["test", "val"] = "test",
        test_all: bool = False,
        val_fraction: float = 0.2,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        frontend: GammatoneFrontend | None = None,
        train_target: Literal["scores", "mean"] = "scores",
        train_on: Literal["ratings", "panels"] = "ratings",
        align: bool = True,
        demo_items: tuple[int, int] = (16, 8),
        progress: bool = True,
    ):
        super().__init__()
        if num_folds < 2:
            raise ManifestError(f"data.num_folds: {num_folds}; expected 2 or more")
        if not 0 <= fold < num_folds:
            raise ManifestError(f"data.fold: {fold}; expected 0 to {num_folds - 1}")
        if not 0.0 < val_fraction < 1.0:
            raise ManifestError(f"data.val_fraction: {val_fraction}; expected between 0 and 1")
        # a source: a manifest CSV path, "builtin:demo", or (from Python) a Manifest or an
        # importer's result (anything with a .manifest), used as it is
        source = getattr(manifest, "manifest", manifest)
        self._given: Manifest | None = source if isinstance(source, Manifest) else None
        if self._given is not None:
            path = self._given.path
            manifest = str(path) if path is not None else "<in-memory manifest>"
        self.manifest_arg = manifest
        self.num_folds = num_folds
        self.fold = fold
        if fold_role not in ("test", "val"):
            raise ManifestError(f"data.fold_role: {fold_role!r}; expected 'test' or 'val'")
        self.fold_role = fold_role
        self.test_all = bool(test_all)
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.cache_dir = cache_dir
        self.frontend = frontend if frontend is not None else GammatoneFrontend()
        self.demo_items = tuple(demo_items)
        self.progress = progress
        if train_target not in ("scores", "mean"):
            raise ManifestError(f"data.train_target: {train_target!r}; expected 'scores' or 'mean'")
        self.train_target = train_target
        if train_on not in ("ratings", "panels"):
            raise ManifestError(f"data.train_on: {train_on!r}; expected 'ratings' or 'panels'")
        self.train_on = train_on
        self.align = bool(align)
        #: Examples of the current epoch already trained on (set when resuming mid-epoch).
        self.resume_skip = 0
        self.manifest: Manifest | None = None
        self._checked: Manifest | None = None  # read by check_input, used by setup
        self._stimuli: _Stimuli | None = None
        self.partition: np.ndarray | None = None  # per stimulus: "train" / "val" / "test"
        self.test_sets: list[str] = []

    # -- building -------------------------------------------------------------------------

    @property
    def is_synthetic_demo(self) -> bool:
        """Whether the source is the built-in demo (simulated listeners, not human data)."""
        return self.manifest_arg == BUILTIN_DEMO

    @property
    def source_name(self) -> str:
        """A short name of the source for folder names: ``demo``, or ``<folder>-<file stem>``."""
        if self.is_synthetic_demo:
            return "demo"
        p = Path(self.manifest_arg)
        return f"{p.parent.name}-{p.stem}"

    @staticmethod
    def resolve_source(value: str) -> str:
        """A manifest argument that means the same from any folder (paths made absolute)."""
        if value == BUILTIN_DEMO:
            return value
        return str(Path(value).expanduser().resolve())

    @staticmethod
    def same_source(a: str | None, b: str | None) -> bool:
        """Whether two manifest arguments name the same listening-test source."""
        if a is None or b is None or BUILTIN_DEMO in (a, b):
            return a == b
        return GMLDataModule.resolve_source(a) == GMLDataModule.resolve_source(b)

    def manifest_path(self) -> Path:
        """The manifest file, building the built-in demo first when asked for it."""
        if self._given is not None:
            return Path(self.manifest_arg)
        if self.manifest_arg == BUILTIN_DEMO:
            from gml.data.demo import demo_manifest

            cache = self.cache_dir if self.cache_dir is not None else default_cache_dir()
            music, speech = self.demo_items
            return Path(
                demo_manifest(cache, music_items=music, speech_items=speech, progress=self.progress)
            )
        return Path(os.path.expanduser(self.manifest_arg))

    def prepare_data(self) -> None:
        if self._given is None:
            self.manifest_path()

    def check_input(self) -> None:
        """Read and check the manifest (columns, values, audio files present) without
        computing features, so that ``gml fit`` reports a bad manifest before it creates a
        run folder. The built-in demo and an in-memory manifest need no check.

        Raises:
            ManifestError: naming the file, row and column.
        """
        if self._given is None and self.manifest_arg != BUILTIN_DEMO and self._checked is None:
            self._checked = Manifest.read(self.manifest_path())

    def setup(self, stage: str | None = None) -> None:
        if self._stimuli is not None:
            return
        if self._given is not None:
            self.manifest = self._given
        elif self._checked is not None:
            self.manifest = self._checked  # read by check_input
        else:
            self.manifest = Manifest.read(self.manifest_path())
        table = self.manifest.stimuli()
        by_stim = self.manifest.ratings.groupby(list(STIMULUS_KEY), sort=True)["score"]
        scores = [g.to_numpy(dtype=np.float32) for _, g in by_stim]
        cache_dir = None if self.cache_dir is None else Path(self.cache_dir) / "features"
        cache = FeatureCache(self.frontend, cache_dir, progress=self.progress)
        try:
            pairs = list(zip(table["reference"], table["coded"]))
            # the same codec-delay removal as the listener applies when it scores audio
            table["delay_samples"] = cache.delays(pairs) if self.align else 0
            table["delay_ms"] = (
                1000.0 * table["delay_samples"] / self.frontend.settings()["sample_rate"]
            )
            stimuli = _Stimuli(table, {}, scores)
            items = [it for i in range(len(table)) for it in stimuli.items(i)]
            stimuli.features = cache.get_many(items)
        except AudioError as err:
            raise ManifestError(self.manifest.locate(str(err)) + str(err)) from None
        self._stimuli = stimuli
        self._warn_length_mismatches(stimuli)
        self.partition = self.assign_partition(table)
        self._warn_few_items(table)
        self.test_sets = sorted(table.loc[self.partition == "test", "test"].unique())

    #: Warn when a stimulus's aligned reference and coded signals differ by more than this.
    max_length_difference: float = MAX_LENGTH_DIFFERENCE

    def _warn_length_mismatches(self, stimuli: _Stimuli) -> None:
        """One warning naming the first stimulus (and both files) whose aligned signals differ
        in length by more than :attr:`max_length_difference`, with the count of such."""
        import warnings

        from gml.errors import GMLWarning

        hop = self.frontend.hop_length / self.frontend.settings()["sample_rate"]
        bad = []
        for i in range(len(stimuli.table)):
            ref_item, cod_item = stimuli.items(i)
            # the features are of the aligned signals: no delay left to remove
            diff = length_difference(
                stimuli.features[ref_item].shape[-1] * hop,
                stimuli.features[cod_item].shape[-1] * hop,
                0.0,
            )
            if abs(diff) > self.max_length_difference:
                bad.append((i, diff))
        if bad:
            i, diff = bad[0]
            row = stimuli.table.iloc[i]
            warnings.warn(
                f"{len(bad)} stimuli whose coded and reference lengths differ by more than "
                f"{self.max_length_difference:g} s after delay removal, e.g. {row['coded']} is "
                f"{describe_difference(diff)} than {row['reference']}; "
                "the shorter one is zero-padded on both sides",
                GMLWarning,
                stacklevel=2,
            )

    def _warn_few_items(self, table: pd.DataFrame) -> None:
        """One warning when a listening test has fewer items than folds (some folds are then
        empty, and the held-out fold and the validation share hold one item or none), naming
        each such test and how many items each partition got."""
        import warnings

        from gml.errors import GMLWarning

        if self.test_all or ("split" in table.columns and self.fold_role == "test"):
            return  # no folds dealt
        items = table.assign(partition=self.partition)
        if "split" in table.columns:  # rows fixed to the test partition are not folded
            items = items.loc[~table["split"].eq("test").to_numpy()]
        lines = []
        for test, g in items.groupby("test", sort=True):
            per_item = g.drop_duplicates("item")["partition"]
            if len(per_item) >= self.num_folds:
                continue
            count = per_item.value_counts()
            lines.append(
                f"{test!r}: {len(per_item)} items in {self.num_folds} folds leave "
                f"{count.get('test', 0)} to test, {count.get('val', 0)} to validate and "
                f"{count.get('train', 0)} to train"
            )
        if lines:
            warnings.warn(
                f"fewer items than folds (data.num_folds {self.num_folds}, data.fold "
                f"{self.fold}): " + "; ".join(lines) + "; the test and validation results "
                "rest on one item or none (use fewer folds, or more items)",
                GMLWarning,
                stacklevel=3,
            )

    def assign_partition(self, table: pd.DataFrame) -> np.ndarray:
        """Partition (``"train"``, ``"val"`` or ``"test"``) of each row of a stimulus table
        under this module's folds, fold role, seed and ``split`` column; needs no audio.

        Shape:
            table: one row per stimulus (``test, item, condition[, split]``) → ``[len(table)]``.
        """
        if self.test_all:
            return np.full(len(table), "test", dtype=object)
        has_split = "split" in table.columns
        if has_split and self.fold_role == "test":
            return table["split"].to_numpy()
        fixed = table["split"].eq("test").to_numpy() if has_split else np.zeros(len(table), bool)
        keys = table.loc[~fixed, ["test", "item"]].drop_duplicates().reset_index(drop=True)
        folds = assign_folds(keys, self.num_folds, self.seed)
        held_out = "val" if self.fold_role == "val" else "test"
        part = np.where(folds == self.fold, held_out, "train").astype(object)
        if self.fold_role == "test":
            for test, idx in keys.groupby("test", sort=True).indices.items():
                rng = np.random.default_rng([self.seed + 1, zlib.crc32(str(test).encode())])
                pool = np.asarray([i for i in idx if part[i] == "train"])
                n_val = min(max(1, round(self.val_fraction * len(pool))), len(pool) - 1)
                if n_val > 0:
                    part[rng.choice(pool, size=n_val, replace=False)] = "val"
        lookup = {(t, i): p for (t, i), p in zip(keys.itertuples(index=False), part)}
        out = np.full(len(table), "test", dtype=object)  # rows fixed to test by `split`
        for k in np.flatnonzero(~fixed):
            out[k] = lookup[(table["test"].iat[k], table["item"].iat[k])]
        return out

    # -- views ----------------------------------------------------------------------------

    @property
    def stimuli(self) -> pd.DataFrame:
        """The stimulus table (one row per stimulus; ``index`` in batches points here) with
        a ``partition`` column."""
        self._require_setup()
        return self._stimuli.table.assign(partition=self.partition)

    def _require_setup(self) -> None:
        if self._stimuli is None:
            raise RuntimeError("GMLDataModule.setup() has not run")

    def _index(self, part: str, test: str | None = None) -> np.ndarray:
        mask = self.partition == part
        if test is not None:
            mask &= (self._stimuli.table["test"] == test).to_numpy()
        return np.flatnonzero(mask)

    def _loader(
        self, ds: Dataset, batch_size: int, shuffle: bool, collate_fn=collate
    ) -> DataLoader:
        # Under DDP each rank reads its own share: training examples shuffled per epoch (the
        # trainer sets the epoch), evaluation stimuli each exactly once (Lightning's default
        # sampler would repeat some to even out the ranks, counting them twice in the metrics)
        trainer = getattr(self, "trainer", None)
        world = trainer.world_size if trainer is not None else 1
        sampler = None
        if world == 1 and shuffle:
            # a seeded order per epoch: resumable mid-epoch, reproducible with the same seed
            epoch_of = (lambda: trainer.current_epoch) if trainer is not None else None
            sampler = EpochShuffle(len(ds), self.seed, epoch_of)
            sampler.skip_next(self.resume_skip)
            self.resume_skip = 0
            return ResumableLoader(
                ds,
                batch_size=batch_size,
                sampler=sampler,
                num_workers=self.num_workers,
                collate_fn=collate_fn,
                persistent_workers=self.num_workers > 0,
                # each epoch's iterator draws its seed from here, not from torch's global
                # generator: a run resumed at an epoch end continues the augmentations exactly
                generator=torch.Generator().manual_seed(self.seed),
            )
        if world > 1:
            from torch.utils.data import DistributedSampler

            rank = trainer.global_rank
            if shuffle:
                sampler = DistributedSampler(ds, world, rank, shuffle=True, seed=self.seed)
            else:
                from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

                sampler = UnrepeatedDistributedSampler(ds, world, rank, shuffle=False)
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_fn,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self._require_setup()
        idx = self._index("train")
        if len(idx) == 0:
            raise ManifestError(f"{self.manifest_path()}: no stimuli in the training partition")
        if self.train_target == "mean":
            return self._loader(StimulusDataset(self._stimuli, idx), self.batch_size, True)
        if self.train_on == "panels":
            ds = StimulusDataset(self._stimuli, idx)
            return self._loader(ds, self.batch_size, True, collate_fn=collate_panels)
        return self._loader(RatingDataset(self._stimuli, idx), self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self._require_setup()
        return self._loader(
            StimulusDataset(self._stimuli, self._index("val")), self.eval_batch_size, False
        )

    def test_dataloader(self) -> list[DataLoader]:
        self._require_setup()
        if not self.test_sets:
            raise ManifestError(f"{self.manifest_path()}: no stimuli in the test partition")
        return [
            self._loader(
                StimulusDataset(self._stimuli, self._index("test", t)), self.eval_batch_size, False
            )
            for t in self.test_sets
        ]

    def predict_dataloader(self) -> DataLoader:
        self._require_setup()
        idx = np.arange(len(self._stimuli.table))
        return self._loader(StimulusDataset(self._stimuli, idx), self.eval_batch_size, False)

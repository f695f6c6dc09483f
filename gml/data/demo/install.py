"""The built-in demo's corpus on disk: where it is cached, generating it (excerpts,
conditions, latent quality, panel ratings) and installing it atomically, so that concurrent
first runs and interrupted ones leave a complete corpus or none. See :mod:`gml.data.demo`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from gml.data.demo import panel as demo_panel
from gml.data.demo.degradations import DEGRADE, lowpass
from gml.data.demo.quality import (
    band_distortion,
    distortion_to_quality,
    view_band_energies,
)
from gml.data.demo.spec import (
    CONDITION_ROLES,
    CONDITIONS,
    DEFAULT_SIZE,
    DEGRADATIONS,
    DEMO_VERSION,
    DESCRIPTION,
    EXTRA_COLUMNS,
    K_DEGRADE,
    K_PANEL,
    K_RATE,
    K_SENS,
    MANIFEST_COLUMNS,
    NOMINAL_STRENGTHS,
    SAMPLE_RATE,
    TEST_KEY,
    seeded_rng,
)
from gml.data.demo.synthesis import synth_item
from gml.data.paths import default_cache_dir

__all__ = ["demo_manifest", "demo_root", "make_demo"]


# --------------------------------------------------------------------------------------------
# cache location and public entry points
# --------------------------------------------------------------------------------------------
def _params(seconds, music_items, speech_items, music_listeners, speech_listeners, seed) -> dict:
    p = dict(
        demo_version=DEMO_VERSION,
        seconds=float(seconds),
        music_items=int(music_items),
        speech_items=int(speech_items),
        music_listeners=int(music_listeners),
        speech_listeners=int(speech_listeners),
        seed=int(seed),
    )
    if not 0.25 <= p["seconds"] <= 60.0:
        raise ValueError(f"seconds must be within [0.25, 60], got {seconds}")
    for k in ("music_items", "speech_items", "music_listeners", "speech_listeners"):
        if not 1 <= p[k] <= 999:
            raise ValueError(f"{k} must be within [1, 999], got {p[k]}")
    if p["seed"] < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return p


def demo_root(
    cache_dir: str | os.PathLike | None = None,
    *,
    seconds: float = DEFAULT_SIZE["seconds"],
    music_items: int = DEFAULT_SIZE["music_items"],
    speech_items: int = DEFAULT_SIZE["speech_items"],
    music_listeners: int = DEFAULT_SIZE["music_listeners"],
    speech_listeners: int = DEFAULT_SIZE["speech_listeners"],
    seed: int = DEFAULT_SIZE["seed"],
) -> Path:
    """Folder of the (synthetic) demo corpus: ``<cache>/demo-v{DEMO_VERSION}-<size tag>``.

    ``cache`` is ``cache_dir`` if given, else ``$GML_CACHE_DIR``, else ``$XDG_CACHE_HOME/gml``,
    else ``~/.cache/gml``. The size tag encodes the parameters, e.g. ``m16x15-s8x10-3s-seed0``
    (music items x listeners, speech items x listeners, seconds, seed).
    """
    p = _params(seconds, music_items, speech_items, music_listeners, speech_listeners, seed)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tag = (
        f"m{p['music_items']}x{p['music_listeners']}-s{p['speech_items']}x{p['speech_listeners']}"
        f"-{p['seconds']:g}s-seed{p['seed']}"
    )
    return cache / f"demo-v{DEMO_VERSION}-{tag}"


def demo_manifest(cache_dir: str | os.PathLike | None = None, *, progress: bool = True, **size):
    """Path of the built-in (synthetic) demo manifest, generating the corpus on first use.

    ``size`` takes the keyword arguments of :func:`make_demo` (``seconds``, ``music_items``,
    ``speech_items``, ``music_listeners``, ``speech_listeners``, ``seed``).
    """
    return make_demo(demo_root(cache_dir, **size), progress=progress, **size)


def make_demo(
    root: str | os.PathLike | None = None,
    *,
    seconds: float = 3.0,
    music_items: int = 16,
    speech_items: int = 8,
    music_listeners: int = 15,
    speech_listeners: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate the SYNTHETIC demo listening tests into ``root``; return ``root/manifest.csv``.

    Idempotent: if ``root/manifest.csv`` exists and ``root/demo.json`` records the same
    parameters, nothing is regenerated. Generation happens in a temporary sibling folder that is
    renamed into place at the end, so an interrupted run leaves no half-written corpus; if
    another process installed the same corpus meanwhile, its copy is kept and ours discarded.
    An existing demo folder with *different* parameters is replaced; a non-empty folder that is
    not a demo folder is never touched (``FileExistsError``).
    """
    p = _params(seconds, music_items, speech_items, music_listeners, speech_listeners, seed)
    if root is None:
        root = demo_root(
            None,
            **{k: p[k] for k in DEFAULT_SIZE},
        )
    root = Path(root).expanduser().absolute()
    manifest = root / "manifest.csv"
    if _is_complete(root, p):
        return manifest
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root)
    # the writer's PID in the name lets the next run see that a killed writer's folder is stale
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-{os.getpid()}-", dir=root.parent))
    try:
        _generate(tmp, p, progress)
        _install(tmp, root, p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


# --------------------------------------------------------------------------------------------
# atomic install helpers
# --------------------------------------------------------------------------------------------
def _read_params(root: Path) -> dict | None:
    try:
        with open(root / "demo.json", encoding="utf-8") as f:
            return json.load(f).get("params")
    except (OSError, ValueError, AttributeError):
        return None


def _is_complete(root: Path, p: dict) -> bool:
    return (root / "manifest.csv").is_file() and _read_params(root) == p


def _is_demo_folder(root: Path) -> bool:
    return (root / "demo.json").is_file() or (root / "manifest.csv").is_file()


def _check_replaceable(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"demo root {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not _is_demo_folder(root):
        raise FileExistsError(
            f"demo root {root} exists, is not empty and is not a gml demo folder; "
            "refusing to overwrite it"
        )


def _writer_gone(d: Path, root: Path) -> bool:
    """A temporary folder named with its writer's PID whose process no longer runs."""
    pid = d.name[len(f".{root.name}.tmp-") :].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. another user's process: alive
        return False
    return False


def _remove_stale_temps(root: Path, max_age_s: float = 6 * 3600) -> None:
    """Remove temporaries of interrupted runs: those whose writer is gone at once (a killed
    run left ~70 MB behind), others once older than ``max_age_s``."""
    now = time.time()
    for pattern in (f".{root.name}.tmp-*", f".{root.name}.old-*"):
        for d in root.parent.glob(pattern):
            try:
                if _writer_gone(d, root) or now - d.stat().st_mtime > max_age_s:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass


def _install(tmp: Path, root: Path, p: dict) -> None:
    for _ in range(5):
        if _is_complete(root, p):
            return  # someone else finished first: keep theirs, discard ours
        old = None
        if root.exists():
            _check_replaceable(root)
            if root.is_dir() and not any(root.iterdir()):
                try:
                    root.rmdir()
                except OSError:
                    continue
            else:  # an older / different demo: move it aside, then remove it
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                try:
                    os.replace(root, old / "x")
                except OSError:
                    shutil.rmtree(old, ignore_errors=True)
                    continue
        try:
            os.rename(tmp, root)
            return
        except OSError:
            continue
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    if not _is_complete(root, p):
        raise RuntimeError(f"could not install the demo corpus into {root}")


# --------------------------------------------------------------------------------------------
# simulated listeners
# --------------------------------------------------------------------------------------------
def _panel(test: str, n: int, seed: int) -> demo_panel.Listeners:
    """The simulated panel of one listening test (``m01`` ... for music, ``s01`` ... for speech)."""
    rng = seeded_rng(seed, K_PANEL, TEST_KEY[test])
    prefix = "m" if test == "demo-music" else "s"
    width = max(2, len(str(n)))
    ids = [f"{prefix}{i + 1:0{width}d}" for i in range(n)]
    return demo_panel.draw_listeners(n, rng, demo_panel.DEFAULT_SETTINGS, ids)


_KINDS = [demo_panel.demo_kind(c) for c in CONDITIONS]


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _write(path: Path, pcm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _generate(out: Path, p: dict, progress: bool) -> None:
    n = int(round(p["seconds"] * SAMPLE_RATE))
    tests = {
        "demo-music": (p["music_items"], p["music_listeners"]),
        "demo-speech": (p["speech_items"], p["speech_listeners"]),
    }
    total = sum(items for items, _ in tests.values()) * len(CONDITIONS)
    done = 0
    rows = []
    t0 = time.perf_counter()

    def tick():
        nonlocal done
        done += 1
        if progress:
            print(f"\rdemo (synthetic): {done}/{total} files", end="", file=sys.stderr, flush=True)

    for test, (n_items, n_listeners) in tests.items():
        panel = _panel(test, n_listeners, p["seed"])
        for i in range(n_items):
            item, ref = synth_item(test, i, n, p["seed"])
            ref_pcm = _to_pcm16(ref)
            ref = ref_pcm / 32767.0
            e_ref = view_band_energies(ref)
            folder = Path("audio") / test / item
            ref_rel = (folder / "reference.wav").as_posix()
            _write(out / ref_rel, ref_pcm)
            sens = seeded_rng(p["seed"], K_SENS, TEST_KEY[test], i).lognormal(
                0, 0.4, len(DEGRADATIONS)
            )
            stimuli = []  # (condition, coded path, strength, latent quality) in CONDITIONS order
            for ci, cond in enumerate(CONDITIONS):
                strength = 0.0
                if cond == "reference":
                    coded, coded_rel = ref, ref_rel
                else:
                    if cond == "lp35":
                        y = lowpass(ref, 3500)
                    elif cond == "lp70":
                        y = lowpass(ref, 7000)
                    else:
                        kind, level = cond.rsplit("_", 1)
                        strength = (
                            NOMINAL_STRENGTHS[int(level) - 1] * sens[DEGRADATIONS.index(kind)]
                        )
                        drng = seeded_rng(p["seed"], K_DEGRADE, TEST_KEY[test], i, ci)
                        y = DEGRADE[kind](ref, strength, drng)
                    pcm = _to_pcm16(y)
                    coded = pcm / 32767.0
                    coded_rel = (folder / f"{cond}.wav").as_posix()
                    _write(out / coded_rel, pcm)
                q = 100.0
                if cond != "reference":
                    q = distortion_to_quality(band_distortion(e_ref, view_band_energies(coded)))
                stimuli.append((cond, coded_rel, strength, q))
                tick()
            # one MUSHRA trial: the panel rates all conditions of the item together
            rrng = seeded_rng(p["seed"], K_RATE, TEST_KEY[test], i)
            scores = demo_panel.rate_trial([s[3] for s in stimuli], _KINDS, panel, rrng)
            for ci, (cond, coded_rel, strength, q) in enumerate(stimuli):
                for listener, score in zip(panel.ids, scores[:, ci], strict=True):
                    rows.append(
                        (
                            test,
                            item,
                            cond,
                            listener,
                            int(score),
                            ref_rel,
                            coded_rel,
                            1,
                            f"{strength:.4f}",
                            f"{q:.2f}",
                            CONDITION_ROLES.get(cond, ""),
                        )
                    )
    if progress:
        print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS + EXTRA_COLUMNS)
        w.writerows(rows)
    meta = {
        "synthetic": True,
        "description": DESCRIPTION,
        "generator": "gml.data.demo",
        "params": p,
        "sample_rate": SAMPLE_RATE,
        "tests": {
            t: {"items": items, "listeners": list(_panel(t, nl, p["seed"]).ids)}
            for t, (items, nl) in tests.items()
        },
        "panel": {
            # as demo version 3 has always written it (demo.json stays byte-identical)
            "model": "gml.data.demo_panel (simulated listeners; settings fitted to SiSEC08)",
            "settings": asdict(demo_panel.DEFAULT_SETTINGS),
        },
        "conditions": list(CONDITIONS),
        "nominal_strengths": list(NOMINAL_STRENGTHS),
        "columns": {
            "synthetic": "1: every rating here is simulated, not from a human listener",
            "strength": "effective degradation strength (nominal x item sensitivity); 0 for "
            "the hidden reference and the anchors",
            "latent_quality": "quality computed from the audio (objective_distortion mapped "
            "by distortion_to_quality) from which the simulated listeners' scores are drawn",
            "role": "hidden_reference, low_anchor (lp35), mid_anchor (lp70); empty for the "
            "codec-like systems under test",
        },
    }
    with open(out / "demo.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

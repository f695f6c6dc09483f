"""The built-in demo listening test -- SYNTHETIC data, not human ratings.

Everything here is made up, deterministically, from a seed: the audio excerpts are synthesised
with numpy (tones, drums, applause, noise textures, formant "speech"), the "coded" versions are
made by simple codec-like signal processing, and the MUSHRA scores come from a *simulated*
listener panel. It exists so that ``gml`` can be trained, evaluated and tested end-to-end on
the first run without downloading anything. Numbers obtained on it say nothing about real
listeners or real codecs.

Two listening tests are made, so that per-test-set reporting is exercised:

* ``demo-music``  -- music-like excerpts (tonal, percussive, noisy, wide and narrow stereo
  images), rated by a panel of ``music_listeners`` simulated listeners (``m01`` ...);
* ``demo-speech`` -- speech-like excerpts (glottal pulses through time-varying formant filters,
  mostly centred, some with background noise), rated by a different, smaller panel (``s01`` ...).

Conditions per excerpt: the hidden ``reference``, the 3.5 kHz and 7 kHz low-pass anchors
``lp35`` and ``lp70``, and four codec-like degradations at three nominal strengths each:
``bandlimit_holes_{1,2,3}`` (band limitation plus spectral holes), ``quantnoise_{1,2,3}``
(spectrally shaped quantisation noise, short frames), ``stereo_collapse_{1,2,3}`` (side-signal
reduction, intensity-stereo-like band panning, crosstalk) and ``preecho_{1,2,3}`` (coarse
quantisation in long frames, which spreads noise before transients). The effective strength of
a degradation is its nominal strength times a random, item-dependent sensitivity, and the
latent quality of every stimulus is computed *from the audio* by an objective band-wise
log-spectral distance (:func:`objective_distortion`, mapped to 0-100 by fixed constants in
:func:`distortion_to_quality`), so a constant per condition does not explain the scores.

The simulated listeners (:mod:`gml.data.demo.panel`) rate each item's conditions together, as
in a MUSHRA trial: a listener-specific affine map of ``q`` (own offset and range) plus own-size
noise for the codec-like conditions, a personal offset for the anchors, the hidden reference at
100 unless the listener took a transparent-sounding condition for it, then a slider that prefers
round numbers and clips to integers 0-100. Its settings
(:data:`gml.data.demo.panel.DEFAULT_SETTINGS`) are fitted to real MUSHRA ratings (SiSEC 2008);
the listeners are still simulated, so the demo stays synthetic.

This package is the demo's one public door (the names below); its jobs live in their own
modules: :mod:`~gml.data.demo.spec` (version, conditions, seeds),
:mod:`~gml.data.demo.synthesis` (the excerpts), :mod:`~gml.data.demo.degradations` (the
codec-like conditions and anchors), :mod:`~gml.data.demo.quality` (the objective quality
measure), :mod:`~gml.data.demo.panel` (the listeners) and :mod:`~gml.data.demo.install` (the
corpus on disk). Fitting the panel to SiSEC08 is research tooling: ``tools/demo_panel_fit.py``.

Layout written by :func:`make_demo`::

    <root>/manifest.csv                       one row per rating (the gml Manifest format)
    <root>/demo.json                          parameters + ``"synthetic": true`` + description
    <root>/audio/<test>/<item>/<condition>.wav   48 kHz, stereo, PCM_16
"""

from __future__ import annotations

from gml.data.demo.install import demo_manifest, demo_root, make_demo
from gml.data.demo.quality import distortion_to_quality, objective_distortion
from gml.data.demo.spec import (
    CONDITION_ROLES,
    CONDITIONS,
    DEGRADATIONS,
    DEMO_VERSION,
    SAMPLE_RATE,
)

__all__ = [
    "CONDITIONS",
    "CONDITION_ROLES",
    "DEGRADATIONS",
    "DEMO_VERSION",
    "SAMPLE_RATE",
    "demo_manifest",
    "demo_root",
    "distortion_to_quality",
    "make_demo",
    "objective_distortion",
]

"""Inference speed-ups compute the same function: folded batch norm, channels-last and chunked
CPU evaluation, batched windows, whole-excerpt scoring (timings: benchmarks/, not here)."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from torch import nn

import gml
from gml.backbones import InSENet
from gml.features import load_audio
from gml.features.stream import AudioInfo
from gml.inference import fold_batchnorm
from gml.scoring.feeds import ThreadFeed
from gml.scoring.prepared import PreparedPair
from gml.scoring.threads import ThreadBudget

from .conftest import write_pair


def _randomise_batchnorm(net: nn.Module, seed: int = 0) -> None:
    """Give every batch norm non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.fixture(scope="module")
def small_net() -> InSENet:
    torch.manual_seed(0)
    net = InSENet("small")
    _randomise_batchnorm(net)
    return net.eval()


def test_fold_batchnorm_same_function_original_untouched(small_net):
    x = torch.rand(3, 4, 2, 32, 60) * 60
    before = copy.deepcopy(small_net.state_dict())
    folded = fold_batchnorm(small_net)
    with torch.no_grad():
        ref, out = small_net(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
    # the batch norms after convolutions are gone (the input one, before the stem, stays)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in small_net.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 1 < n_bn
    after = small_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert small_net.branches[0].trunk[1][1].__class__ is nn.BatchNorm2d


def test_fold_batchnorm_in_place_folds_the_network_itself(small_net):
    """``in_place=True`` (a network built for inference only) folds the module given, with
    the same function as the copy."""
    x = torch.rand(2, 4, 2, 32, 60) * 60
    net = copy.deepcopy(small_net)
    with torch.no_grad():
        ref = small_net(x)
        folded = fold_batchnorm(net, in_place=True)
        out = folded(x)
    assert folded is net
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 1
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())


def test_a_loaded_listener_prepares_its_own_networks_and_a_given_module_is_copied(
    tiny_run, tmp_path
):
    """``gml.load`` builds the networks for the listener alone and prepares them in place (no
    copy: its members' backbones are the folded ones); a module handed to ``Listener`` is left
    as it was (its batch norms stay), and both score a pair alike."""
    from gml.listener import Listener
    from gml.scoring.model import load_scoring_model

    def norms(module: nn.Module) -> int:
        return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())

    loaded = gml.load(tiny_run, device="cpu")
    given = load_scoring_model(tiny_run)
    before = norms(given.backbone)
    lis = Listener(given, device="cpu")
    assert norms(given.backbone) == before > norms(loaded.module.backbone)
    ref, cod = write_pair(tmp_path, seconds=1.5)
    a, b = loaded.predict(ref, cod), lis.predict(ref, cod)
    assert a.mean == pytest.approx(b.mean, abs=1e-4) and a.std == pytest.approx(b.std, abs=1e-4)


def test_fold_batchnorm_leaves_other_patterns():
    """A user's network: a conv followed by a norm of another width, a norm first, a
    norm after a linear layer; nothing of it may change."""
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    odd = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    _randomise_batchnorm(net)
    folded = fold_batchnorm(net)
    assert isinstance(folded[0], nn.BatchNorm2d) and isinstance(folded[2], nn.Identity)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), net.eval()(x), atol=1e-5)
    assert isinstance(fold_batchnorm(odd)[1], nn.BatchNorm1d)


def test_cpu_trunk_on_folded_batchnorm_equals_plain(small_net):
    """The listener's CPU network (batch norm folded, then the CPU trunk: 4 images at a time
    in channels-last format) equals one NCHW pass of the trained network over the whole
    batch, and scoring windows one by one equals scoring them together."""
    from gml.inference import cpu_trunk

    x = torch.rand(5, 4, 2, 32, 70) * 60  # 20 images: 5 chunks
    fast = cpu_trunk(fold_batchnorm(small_net), in_place=True)
    with torch.no_grad():
        ref, out = small_net(x), fast(x)
        one_by_one = torch.cat([fast(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(one_by_one, out, rtol=1e-4, atol=1e-5)


def test_whole_excerpt_is_one_pass_like_training(tiny_run, tmp_path):
    """A pair up to window_seconds long is one window: the listener's distribution is the
    module's own on the whole excerpt's features (what gml test evaluates)."""
    ref, cod = write_pair(tmp_path, seconds=3.0)
    listener = gml.load(tiny_run, device="cpu", align=False)
    pred = listener.predict(ref, cod)
    assert pred.windows == 1
    module = listener.module
    feats = module.frontend(
        torch.from_numpy(load_audio(ref)), torch.from_numpy(load_audio(cod))
    ).unsqueeze(0)
    with torch.no_grad():
        dist = module(feats)
    assert pred.mean == pytest.approx(float(dist.mean), abs=1e-3)
    assert pred.std == pytest.approx(float(dist.stddev), abs=1e-3)


def test_batched_windows_equal_batch_one(tiny_run, tmp_path):
    """Windows of a long pair scored 8 at a time equal one at a time."""
    ref, cod = write_pair(tmp_path, seconds=6.0, seed=3)
    one = gml.load(tiny_run, device="cpu", window_seconds=1.0, batch_size=1)
    many = gml.load(tiny_run, device="cpu", window_seconds=1.0, batch_size=8)
    a = one.predict(ref, cod, per_window=True)
    b = many.predict(ref, cod, per_window=True)
    assert a.windows == b.windows > 8
    assert torch.allclose(
        torch.tensor(a.per_window["mean"].to_numpy()),
        torch.tensor(b.per_window["mean"].to_numpy()),
        atol=1e-4,
    )
    assert a.mean == pytest.approx(b.mean, abs=1e-4) and a.std == pytest.approx(b.std, abs=1e-4)


def test_prefetching_worker_gives_the_same_predictions_in_order(tiny_run, tmp_path):
    """Pairs prepared in a worker thread while the model runs: same rows, same order, and
    an unreadable file is reported as without the worker (naming it)."""
    pairs = [write_pair(tmp_path, seconds=1.0 + 0.5 * k, seed=k) for k in range(5)]
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    on = gml.load(tiny_run, device="cpu", prefetch=True)
    off = gml.load(tiny_run, device="cpu", prefetch=False)
    a = on.predict(refs, cods, chunk_pairs=2)
    b = off.predict(refs, cods, chunk_pairs=2)
    assert list(a["coded"]) == cods
    assert a["mean"].tolist() == pytest.approx(b["mean"].tolist(), abs=1e-5)
    assert a["std"].tolist() == pytest.approx(b["std"].tolist(), abs=1e-5)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    from gml.features import AudioError

    with pytest.raises(AudioError, match="bad.wav"):
        on.predict(refs[:2] + [refs[2]], cods[:2] + [str(bad)])


def _fake_pair() -> PreparedPair:
    """A prepared pair for feeds driven by fakes (one window, no audio)."""
    info = AudioInfo("x.wav", 48000, 2, 48000)
    return PreparedPair([torch.zeros(4, 2, 3, 5)], [(0, 5)], info, info, 0)


@pytest.mark.parametrize("threads", [3, 4])
def test_a_thread_feed_shares_the_callers_threads_with_the_model(threads):
    """A ThreadFeed with a ThreadBudget, driven by a fake preparation and a fake model: while
    the worker prepares a pair, the model's passes run on the calling thread's torch threads
    but the worker's (half while no prepared pair waits, as for the first pair; else one);
    when nothing is left to prepare, on all of them; the model's count changes no count of
    the worker's; afterwards the caller's count is restored, also as torch's default for new
    threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        entered, release = threading.Event(), threading.Event()
        caller = threading.current_thread()
        worker_threads: list[int] = []
        kept: list[bool] = []

        def prepare(reference: int, coded: int) -> PreparedPair:
            assert threading.current_thread() is not caller
            worker_threads.append(torch.get_num_threads())
            if reference == 1:  # the worker is busy with the second pair...
                entered.set()
                assert release.wait(30)
                # ...and the model's count, set meanwhile, did not change the worker's
                kept.append(torch.get_num_threads() == worker_threads[-1])
            return _fake_pair()

        feed = ThreadFeed(prepare, [0, 1, 2], [0, 1, 2], prefetch=True, budget=ThreadBudget())
        seen: list[int] = []
        try:
            for chunk in feed:
                for _ in chunk.pairs:  # the fake model: one pass a pair
                    if not entered.is_set():  # ...when the first pair reaches the model
                        assert entered.wait(30)
                    feed.before_pass()
                    seen.append(torch.get_num_threads())
                    release.set()
        finally:
            feed.close()
        assert torch.get_num_threads() == threads
        half = threads // 2
        assert worker_threads[0] == half  # nothing prepared yet: the model waits
        assert set(worker_threads) <= {1, half}
        assert seen[0] == threads - worker_threads[1]  # scored while the worker computes
        assert seen[-1] == threads  # the last pair: nothing left to prepare
        assert kept == [True]
        assert not ThreadBudget.busy()
        new_thread: list[int] = []
        t = threading.Thread(target=lambda: new_thread.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert new_thread == [threads]
    finally:
        torch.set_num_threads(before)


def test_prefetching_gives_the_predictions_of_scoring_in_turn(tiny_run, tmp_path):
    """A listener whose prefetch thread prepares the next pairs (sharing the threads) scores
    them as one that prepares them in turn, and leaves the caller's thread count as it was."""
    pairs = [write_pair(tmp_path, seconds=1.0 + 0.5 * k, seed=k) for k in range(3)]
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        on = gml.load(tiny_run, device="cpu", prefetch=True, batch_size=1).predict(refs, cods)
        assert torch.get_num_threads() == 3 and not ThreadBudget.busy()
        off = gml.load(tiny_run, device="cpu", prefetch=False).predict(refs, cods)
        assert on["mean"].tolist() == pytest.approx(off["mean"].tolist(), abs=1e-5)
    finally:
        torch.set_num_threads(before)


def test_an_error_in_the_model_stops_the_prefetch_thread_and_restores_the_threads():
    """When scoring fails (here the fake model), closing the feed stops the prefetch thread
    and restores the caller's torch threads, even while the caller keeps the traceback; the
    next feed shares the threads again. An error in preparing a pair reaches the caller in
    order: after the chunks of the pairs before it."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        feed = ThreadFeed(lambda r, c: _fake_pair(), [0, 1, 2], [0, 1, 2], budget=ThreadBudget())
        with pytest.raises(RuntimeError, match="model failed") as kept_traceback:
            try:
                for _ in feed:
                    feed.before_pass()
                    raise RuntimeError("model failed")
            finally:
                feed.close()
        assert kept_traceback.value is not None
        assert torch.get_num_threads() == 3
        assert not any(t.name == "gml-prefetch" for t in threading.enumerate())
        assert not ThreadBudget.busy()

        def prepare(reference: int, coded: int) -> PreparedPair:
            if reference == 2:
                raise ValueError("bad file 2")
            return _fake_pair()

        pairs = [0, 1, 2, 3]
        again = ThreadFeed(prepare, pairs, pairs, chunk_pairs=1, budget=ThreadBudget())
        scored: list[int] = []
        with pytest.raises(ValueError, match="bad file 2"):
            try:
                for chunk in again:
                    assert ThreadBudget.busy()  # sharing again
                    scored += chunk.indices
            finally:
                again.close()
        assert scored == [0, 1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_shared_reference_is_analysed_once(tiny_run, tmp_path, monkeypatch):
    """Several coded versions of one reference: its features are computed once, and the
    predictions equal those of a listener that remembers nothing."""
    import gml.features.stream as stream

    ref, _ = write_pair(tmp_path, seed=0)
    cods = [str(write_pair(tmp_path / f"c{k}", seed=k)[1]) for k in range(3)]
    calls: list[str] = []
    real = stream.streamed_spectrogram

    def counting(source, *a, **k):
        calls.append(str(source))
        return real(source, *a, **k)

    monkeypatch.setattr(stream, "streamed_spectrogram", counting)
    lis = gml.load(tiny_run, device="cpu", align=False)
    frame = lis.predict([str(ref)] * 3, cods)
    assert calls.count(str(ref)) == 1 and len(calls) == 4
    fresh = gml.load(tiny_run, device="cpu", align=False)
    fresh.feature_memory = 0
    again = fresh.predict([str(ref)] * 3, cods)
    assert frame["mean"].tolist() == pytest.approx(again["mean"].tolist(), abs=1e-6)


def test_bf16_listener_stays_close_to_float32(tiny_run, tmp_path):
    """bfloat16 inference (backbone under autocast, head in float32) moves the predictions by
    well under 0.5 points (the demo model: 0.26 at most over its 360 stimuli,
    benchmarks/bf16_agreement.py)."""
    pairs = [write_pair(tmp_path, seconds=1.5, seed=k) for k in range(3)]
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    a = gml.load(tiny_run, device="cpu").predict(refs, cods)
    lis = gml.load(tiny_run, device="cpu", bf16=True)
    b = lis.predict(refs, cods)
    assert (a["mean"] - b["mean"]).abs().max() < 0.5
    assert (a["std"] - b["std"]).abs().max() < 0.5
    params = lis.head_parameters([torch.rand(4, 2, 32, 60) * 60])
    assert params.dtype == torch.float32 and params.shape[:2] == (1, 1)


@pytest.mark.parametrize(
    "heads",
    [("logistic",), ("censored_logistic",), ("beta",), ("mixture",), ("logistic", "gaussian")],
)
def test_chunk_statistics_equal_each_pairs_own_mixture(heads):
    """The statistics computed for a whole chunk at once (segment sums, one bisection)
    equal those of each pair's own mixture object over its windows, for one model and an
    ensemble, for pairs of one and of several windows."""
    from gml.heads import get_head
    from gml.module import GMLModule
    from gml.scoring.statistics import (
        FIGURES,
        QUANTILES,
        excerpt_distribution,
        mixture_figures,
        quantiles,
    )

    torch.manual_seed(0)
    members = [
        GMLModule(backbone=InSENet("tiny"), head=get_head(h), spread_factor=1.0 + 0.3 * k)
        for k, h in enumerate(heads)
    ]
    spreads = [m.spread_distribution for m in members]
    width = members[0].head.proj.out_features
    params = [torch.randn(w, len(members), width) for w in (1, 3, 1, 5)]
    flat = torch.cat(params)
    comps = [m.spread_distribution(flat[:, k]) for k, m in enumerate(members)]
    figures = dict(zip(FIGURES, mixture_figures(comps, [len(p) for p in params]).tolist()))
    for i, p in enumerate(params):
        dist = excerpt_distribution(spreads, p)
        std = float(getattr(dist, "listener_stddev", dist.stddev))
        assert figures["mean"][i] == pytest.approx(float(dist.mean), abs=1e-4)
        assert figures["std"][i] == pytest.approx(std, rel=1e-4, abs=1e-4)
        if len(members) > 1:
            assert figures["model_std"][i] == pytest.approx(float(dist.model_stddev), abs=1e-4)
        # against float64 parameters: where a mixture's CDF is nearly flat (between two
        # members' modes), float32 rounding of a CDF moves a quantile by up to ~0.005 points
        q = quantiles(excerpt_distribution(spreads, p.double())).clamp(0, 100)
        got = [min(100.0, max(0.0, figures[f"q{round(x * 100):02d}"][i])) for x in QUANTILES]
        assert got == pytest.approx(q.tolist(), abs=2e-3)
        below = torch.nextafter(torch.tensor(0.0), torch.tensor(-1.0))
        p_out = float(dist.cdf(below) + 1 - dist.cdf(torch.tensor(100.0)))
        assert figures["p_outside"][i] == pytest.approx(p_out, abs=1e-5)


def test_worker_processes_give_the_same_predictions(tiny_run, tmp_path):
    """Pairs read by DataLoader workers (decode, resample, delay; the frontend then on whole
    waveforms, equal lengths batched) equal the thread path's blockwise features, row for
    row in input order, including a 44.1 kHz mono pair, a delayed coded file and a file
    longer than block_seconds; a bad file is reported by name."""
    import numpy as np
    import soundfile as sf

    pairs = [
        write_pair(tmp_path / f"p{k}", seconds=s, seed=k) for k, s in enumerate((1, 2, 1, 1.5))
    ]
    pairs.append(write_pair(tmp_path / "mono", seconds=1.2, rate=44100, seed=7, mono=True))
    fs, rng = 48000, np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((fs, 2))).astype("float32")  # noise: one clear delay
    ref, delayed = tmp_path / "noise.wav", tmp_path / "delayed.wav"  # 30 ms late
    sf.write(ref, x, fs, subtype="PCM_16")  # 16-bit at 48 kHz: integers to the device
    sf.write(delayed, np.concatenate([np.zeros((1440, 2), "float32"), x])[:fs], fs, "PCM_16")
    pairs.append((ref, delayed))
    mono_ref, mono_cod = tmp_path / "mono16.wav", tmp_path / "mono16_cod.wav"
    sf.write(mono_ref, x[:, 0], fs, subtype="PCM_16")
    sf.write(mono_cod, 0.8 * x[: int(0.9 * fs), 0], fs, subtype="PCM_16")
    pairs.insert(0, (mono_ref, mono_cod))
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    kw = dict(device="cpu", window_seconds=1.0, block_seconds=1.8)
    a = gml.load(tiny_run, workers=0, **kw).predict(refs, cods)
    with_workers = gml.load(tiny_run, workers=2, **kw)
    for on_device in (False, True):  # the delay searched by the workers, or by torch here
        with_workers.delay_on_device = on_device
        b = with_workers.predict(refs, cods)
        assert list(b["coded"]) == cods and list(b["reference"]) == refs
        for col in ("mean", "std", "q05", "q95"):
            assert b[col].tolist() == pytest.approx(a[col].tolist(), abs=1e-4), col
        assert b["delay_ms"].iloc[-1] == pytest.approx(30.0) == a["delay_ms"].iloc[-1]
        assert b["windows"].tolist() == a["windows"].tolist()
        assert b["coded_rate"].iloc[5] == 44100 and b["coded_channels"].iloc[5] == 1
        assert b["coded_channels"].iloc[0] == 1
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    from gml.features import AudioError

    with pytest.raises(AudioError, match="bad.wav"):
        with_workers.predict(refs[:2], [cods[0], str(bad)])


def test_a_batch_too_large_for_one_frontend_pass_gives_the_same_pairs(tiny_run, tmp_path):
    """A loaded batch whose signals exceed the frontend's budget is analysed in groups of
    similar length and put back in order: the same windows as in one pass."""
    from gml.data.pair_audio import PairAudio, collate_pairs

    pairs = [write_pair(tmp_path, seconds=s, seed=k) for k, s in enumerate((3, 2.5, 3.5, 2, 3))]
    ds = PairAudio([str(r) for r, _ in pairs], [str(c) for _, c in pairs], 48000, 0.08)
    batch = collate_pairs([ds[i] for i in range(len(ds))])
    lis = gml.load(tiny_run, device="cpu", window_seconds=1.0)
    whole = lis.preparer().batch(batch)  # 5 pairs of 2-3.5 s: one pass (budget 160 s)
    assert all(len(pair.windows) > 1 for pair in whole)
    lis.batch_size = 1  # budget 20 s: groups of a few signals
    grouped = lis.preparer().batch(batch)
    for a, b in zip(whole, grouped):
        assert a.spans == b.spans
        for wa, wb in zip(a.windows, b.windows):
            assert torch.equal(wa, wb)


def test_worker_processes_are_kept_for_the_next_list(tiny_run, tmp_path):
    """The reading processes start with the listener and outlive a call (starting a dozen
    costs a fraction of a second): the first list and the next, a different one, are read by
    the same processes with the same results; an error in a list leaves the listener usable;
    close() stops the processes."""
    pairs = [write_pair(tmp_path / f"p{k}", seconds=1 + 0.25 * k, seed=k) for k in range(5)]
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    kw = dict(device="cpu", window_seconds=1.0)
    alone = gml.load(tiny_run, workers=0, **kw).predict(refs, cods)
    with gml.load(tiny_run, workers=2, batch_size=2, **kw) as lis:

        def workers() -> list:
            return [w.pid for w in lis._feed._loader._iterator._workers]

        started = workers()  # before any list
        assert len(started) == 2
        assert all(w.is_alive() for w in lis._feed._loader._iterator._workers)
        first = lis.predict(refs[:3], cods[:3])
        assert workers() == started
        second = lis.predict(refs[::-1], cods[::-1])  # another list, other order
        assert workers() == started
        assert first["mean"].tolist() == pytest.approx(alone["mean"][:3].tolist(), abs=1e-4)
        assert second["mean"].tolist() == pytest.approx(alone["mean"][::-1].tolist(), abs=1e-4)
        bad = tmp_path / "bad.wav"
        bad.write_bytes(b"not audio")
        from gml.features import AudioError

        with pytest.raises(AudioError, match="bad.wav"):
            lis.predict(refs[:2], [cods[0], str(bad)])
        again = lis.predict(refs, cods)
        assert again["mean"].tolist() == pytest.approx(alone["mean"].tolist(), abs=1e-4)
        processes = list(lis._feed._loader._iterator._workers)
    for w in processes:  # the with block closed the listener
        w.join(timeout=10)
        assert not w.is_alive()
    assert lis._feed is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_listener_equals_cpu(tiny_run, tmp_path):
    """On a GPU, lists of files go through the worker processes and the frontend runs on the
    GPU: the predictions equal the CPU thread path's; bf16 stays within 0.5 points."""
    pairs = [write_pair(tmp_path, seconds=s, seed=k) for k, s in enumerate((1, 2, 1, 3, 1))]
    refs, cods = [str(r) for r, _ in pairs], [str(c) for _, c in pairs]
    cpu = gml.load(tiny_run, device="cpu").predict(refs, cods)
    lis = gml.load(tiny_run, device="cuda", window_seconds=2.0)
    assert lis.workers > 0
    gpu = lis.predict(refs, cods)
    assert list(gpu["coded"]) == cods
    gpu_whole = gml.load(tiny_run, device="cuda").predict(refs, cods)
    assert gpu_whole["mean"].tolist() == pytest.approx(cpu["mean"].tolist(), abs=1e-3)
    assert gpu_whole["std"].tolist() == pytest.approx(cpu["std"].tolist(), abs=1e-3)
    windowed = gml.load(tiny_run, device="cpu", window_seconds=2.0).predict(refs, cods)
    assert gpu["windows"].tolist() == windowed["windows"].tolist() and gpu["windows"].max() > 1
    assert gpu["mean"].tolist() == pytest.approx(windowed["mean"].tolist(), abs=1e-3)
    bf16 = gml.load(tiny_run, device="cuda", bf16=True).predict(refs, cods)
    assert (bf16["mean"] - gpu_whole["mean"]).abs().max() < 0.5


def test_validation_and_test_on_cpu_use_the_cpu_trunk(tiny_run):
    """With CpuInferenceTrunk, validation and test epochs on CPU run the inference copy of the
    backbone (folded batch norm, CPU trunk) with the same results to float rounding, and the
    trained backbone is back in place after each epoch."""
    from lightning.pytorch import Callback, Trainer

    from gml.backbones.insenet_cpu import CpuViewBranch
    from gml.checkpoint import build_datamodule, load_module
    from gml.cpu_inference import CpuInferenceTrunk

    seen: list[bool] = []

    class Spy(Callback):
        def on_validation_batch_start(self, trainer, pl_module, *args):
            seen.append(any(isinstance(m, CpuViewBranch) for m in pl_module.modules()))

    def validate(*callbacks):
        model = load_module(tiny_run / "best.ckpt")
        trained = model.backbone
        dm = build_datamodule(tiny_run / "best.ckpt", frontend=model.frontend, progress=False)
        trainer = Trainer(
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[*callbacks, Spy()],
        )
        out = trainer.validate(model, datamodule=dm, verbose=False)[0]
        assert model.backbone is trained
        return out

    plain = validate()
    assert seen and not any(seen)
    seen.clear()
    fast = validate(CpuInferenceTrunk())
    assert seen and all(seen)
    assert fast["val/loss"] == pytest.approx(plain["val/loss"], rel=1e-5, abs=1e-5)

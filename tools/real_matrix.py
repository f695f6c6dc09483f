"""Run a matrix of cross-validated trainings on the real listening tests, with a deadline.

Research tooling for ``docs/results-real.md`` (not part of the package). A *job* is one
configuration on one listening test: ``gml cv`` once per seed (item-grouped folds), then, as the
job asks, each seed's spread calibration (``nll``, ``ci``) tested per fold, and the seeds' ensemble
tested per fold; the pooled held-out results (``metrics.json``, ``predictions.csv``, ``pit.csv``)
of each variant are copied to ``RESULTS/<job>/<variant>/`` with the wall time, and the job's
checkpoints are deleted (a paper-size checkpoint is 184 MB). A *transfer* job trains on one test
(80/20 train/val) and tests on the other (``--data.test_all true``).

An *ensemble* job (``members``: ids of cv jobs run with ``keep: true``, one seed each) waits for
its members, tests the equal-weight mixture of their best checkpoints fold by fold, pools it, and
deletes the members' checkpoints.

Jobs run in priority order (the order of the jobs file) in ``--workers`` processes; at the
deadline the running jobs are stopped, and what finished is kept::

    python tools/real_matrix.py run --jobs jobs.jsonl --manifests real-tests/ \\
        --root matrix/ --workers 8 --deadline 480
    python tools/real_matrix.py job '{"id": ..., ...}' --manifests real-tests/ --root matrix/

Job fields: ``id``, ``test`` (``cvssp`` / ``barysenka``; ``train``/``test`` for transfer jobs),
``config`` (a shipped configuration), ``preset``, ``train_on`` (``panels`` / ``ratings``),
``epochs``, ``lr``, ``batch``, ``seeds`` (list), ``folds``, ``calibrate`` (list of methods),
``ensemble`` (bool), ``keep`` (keep each fold's ``best.ckpt`` for an ensemble job), ``extra``
(more ``gml fit`` options), ``kind`` (``cv``, ``transfer`` or ``ensemble``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEEP = ("metrics.json", "predictions.csv", "pit.csv")


def _gml(argv: list[str]) -> None:
    """Run one gml command in this process; a failure raises instead of exiting."""
    from gml.cli import main

    try:
        main(argv)
    except SystemExit as err:
        if err.code not in (0, None):
            raise RuntimeError(f"gml {' '.join(argv[:2])} failed with exit {err.code}") from None


def _fit_options(job: dict) -> list[str]:
    opts = [
        "--model.backbone.init_args.preset", job.get("preset", "paper"),
        "--trainer.max_epochs", str(job.get("epochs", 10)),
        "--data.batch_size", str(job.get("batch", 8)),
        "--data.progress", "false",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    if job.get("train_on"):
        opts += ["--data.train_on", job["train_on"]]
    if job.get("lr") is not None:
        opts += ["--model.optimizer.init_args.lr", str(job["lr"])]
    return opts + [str(a) for a in job.get("extra", [])]


def _copy(src: Path, dst: Path, wall: float, **info) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    (dst / "time.json").write_text(json.dumps({"wall_s": round(wall, 1), **info}) + "\n")


def run_cv_job(job: dict, manifests: Path, root: Path) -> None:
    """One configuration on one test: every seed, its calibrations, the seeds' ensemble."""
    from gml.calibration import calibrate
    from gml.cv import collect
    from gml.evaluation import evaluate

    out, res = root / "runs" / job.get("group", job["id"]), root / "results" / job["id"]
    folds = int(job.get("folds", 4))
    manifest = manifests / f"{job['test']}.csv"
    if job.get("fold") is not None:  # one fold of a group; a collect job pools the group
        for seed in job.get("seeds", [0]):
            _gml(["cv", "--config", str(REPO / "configs" / f"{job['config']}.yaml"),
                  "--data.manifest", str(manifest), "--folds", str(folds),
                  "--fold", str(job["fold"]), "--out", str(out / f"seed{seed}"),
                  "--seed_everything", str(seed), *_fit_options(job)])  # fmt: skip
            for path in (out / f"seed{seed}" / f"fold{job['fold']}").rglob("*.ckpt"):
                path.unlink()
        return
    config = str(REPO / "configs" / f"{job['config']}.yaml")
    done_seeds = []
    for seed in job.get("seeds", [0]):
        run = out / f"seed{seed}"
        t0 = time.monotonic()
        _gml(["cv", "--config", config, "--data.manifest", str(manifest), "--folds", str(folds),
              "--out", str(run), "--seed_everything", str(seed), *_fit_options(job)])  # fmt: skip
        _copy(run / "cv", res / f"seed{seed}", time.monotonic() - t0, folds=folds)
        done_seeds.append(seed)
        for method in job.get("calibrate", []):
            t0 = time.monotonic()
            factors = []
            for k in range(folds):
                fold = run / f"fold{k}"
                path, fit = calibrate(fold / "best.ckpt", method, fold / f"best-cal-{method}.ckpt")
                factors.append(round(float(fit["factor"]), 4))
                evaluate(path, out_dir=fold / f"test-best-cal-{method}", plots=False)
            collect(run, folds, f"{job['id']} seed {seed} cal {method}", f"cal-{method}")
            _copy(run / f"cv-cal-{method}", res / f"seed{seed}-cal-{method}",
                  time.monotonic() - t0, factors=factors)  # fmt: skip
    if job.get("keep"):  # an ensemble job needs the folds' best checkpoints, nothing else
        for path in out.rglob("*.ckpt"):
            if path.name != "best.ckpt" or "seed" not in path.parent.parent.name:
                path.unlink()
        return
    if job.get("ensemble") and len(done_seeds) > 1:
        t0 = time.monotonic()
        ens = out / "ensemble"
        for k in range(folds):
            members = [str(out / f"seed{s}" / f"fold{k}" / "best.ckpt") for s in done_seeds]
            evaluate(members, out_dir=ens / f"fold{k}" / "test-best", plots=False)
        collect(ens, folds, f"{job['id']} ensemble")
        _copy(ens / "cv", res / "ensemble", time.monotonic() - t0, members=done_seeds)
    shutil.rmtree(out, ignore_errors=True)


def run_ensemble_job(job: dict, manifests: Path, root: Path) -> None:
    """Wait for the member jobs, then test their best checkpoints as one ensemble per fold."""
    from gml.cv import collect
    from gml.evaluation import evaluate

    status = [root / "results" / m / "status.json" for m in job["members"]]
    while not all(p.is_file() for p in status):
        time.sleep(5)
    members = [m for m, p in zip(job["members"], status) if json.loads(p.read_text())["done"]]
    if len(members) < 2:
        raise RuntimeError(f"only {len(members)} member(s) finished: {members}")
    folds, t0 = int(job.get("folds", 4)), time.monotonic()
    ens = root / "runs" / job["id"]
    for k in range(folds):
        ckpts = [str(next((root / "runs" / m).glob(f"seed*/fold{k}/best.ckpt"))) for m in members]
        evaluate(ckpts, out_dir=ens / f"fold{k}" / "test-best", plots=False)
    collect(ens, folds, f"{job['id']}")
    _copy(ens / "cv", root / "results" / job["id"] / "ensemble", time.monotonic() - t0,
          members=members)  # fmt: skip
    for m in [*members, job["id"]]:
        shutil.rmtree(root / "runs" / m, ignore_errors=True)


def run_collect_job(job: dict, manifests: Path, root: Path) -> None:
    """Pool the folds that a group's fold jobs trained (each seed of the group)."""
    from gml.cv import collect

    out, folds = root / "runs" / job["group"], int(job.get("folds", 4))
    t0 = time.monotonic()
    walls = [json.loads((root / "results" / m / "status.json").read_text())["wall_s"]
             for m in job["members"]]  # fmt: skip
    for run in sorted(out.glob("seed*")):
        collect(run, folds, f"{job['id']} {run.name}")
        _copy(run / "cv", root / "results" / job["id"] / run.name,
              sum(walls) + time.monotonic() - t0, folds=folds, fold_walls=walls)  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)


def run_transfer_job(job: dict, manifests: Path, root: Path) -> None:
    """Train on one test (one 80/20 train/val split), test on the other (and the demo)."""
    out, res = root / "runs" / job["id"], root / "results" / job["id"]
    config = str(REPO / "configs" / f"{job['config']}.yaml")
    train = ",".join(job["train"]) if isinstance(job["train"], list) else job["train"]
    for seed in job.get("seeds", [0]):
        run = out / f"seed{seed}"
        t0 = time.monotonic()
        _gml(["fit", "--config", config, "--data.manifest", str(manifests / f"{train}.csv"),
              "--data.num_folds", "5", "--data.fold", "0", "--data.fold_role", "val",
              "--seed_everything", str(seed), *_fit_options(job),
              "--trainer.logger.init_args.save_dir", str(run), "--trainer.logger.init_args.name",
              "t", "--trainer.logger.init_args.version", "v"])  # fmt: skip
        ckpt = run / "t" / "v" / "best.ckpt"
        fit_wall = time.monotonic() - t0
        for target in job["test"]:
            from gml.evaluation import evaluate

            t1 = time.monotonic()
            ev = evaluate(
                ckpt, manifest=manifests / f"{target}.csv", test_all=True,
                out_dir=run / f"test-{target}", plots=False,
            )  # fmt: skip
            _copy(ev.out_dir, res / f"seed{seed}-on-{target}", fit_wall + time.monotonic() - t1)
    shutil.rmtree(out, ignore_errors=True)


def run_job(job: dict, manifests: Path, root: Path) -> None:
    """Run one job and record it as done (or failed, with the error)."""
    status = root / "results" / job["id"] / "status.json"
    status.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        kind = job.get("kind", "cv")
        runner = {"cv": run_cv_job, "transfer": run_transfer_job, "ensemble": run_ensemble_job,
                  "collect": run_collect_job}  # fmt: skip
        runner[kind](job, manifests, root)
        state = {"done": True}
    except Exception as err:  # noqa: BLE001 - recorded; the matrix goes on
        state = {"done": False, "error": f"{type(err).__name__}: {err}"}
    state.update(job=job, wall_s=round(time.monotonic() - t0, 1))
    status.write_text(json.dumps(state, indent=1) + "\n")


def run_pool(jobs: list[dict], args) -> None:
    """Start jobs in order on ``workers`` processes until the deadline; stop the rest then."""
    start = time.monotonic()
    deadline = start + args.deadline
    pending, running = list(jobs), []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    logs = Path(args.root) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = Path(args.root) / "results"

    def ready(job: dict) -> bool:  # an ensemble starts once its members have ended
        return all((results / m / "status.json").is_file() for m in job.get("members", []))

    while pending or running:
        running = [(j, p) for j, p in running if p.poll() is None]
        while len(running) < args.workers and time.monotonic() < deadline - 30:
            job = next((j for j in pending if ready(j)), None)
            if job is None:
                break
            pending.remove(job)
            log = open(logs / f"{job['id']}.log", "w")  # noqa: SIM115 - closed with the process
            cmd = [sys.executable, __file__, "job", json.dumps(job),
                   "--manifests", args.manifests, "--root", args.root]  # fmt: skip
            running.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                   env=env)))  # fmt: skip
            print(f"[{time.monotonic() - start:6.0f} s] start {job['id']}", flush=True)
        if time.monotonic() >= deadline:
            for job, p in running:
                p.kill()
                print(f"[deadline] stopped {job['id']}", flush=True)
            break
        if not pending and not running:
            break
        time.sleep(1.0)

    def succeeded(job: dict) -> bool:
        status = results / job["id"] / "status.json"
        return status.is_file() and json.loads(status.read_text()).get("done", False)

    done = [job["id"] for job in jobs if succeeded(job)]  # this run's jobs, not earlier ones
    print(f"finished {len(done)} of {len(jobs)} jobs in {time.monotonic() - start:.0f} s")


TESTS = ("cvssp", "barysenka")
HEADS = ("gaussian", "censored", "beta", "mixture", "mixup", "nongml", "nongml_cutmix")
#: Training on panels unless a row says otherwise: Adam 3e-4, 40 epochs, 8 stimuli a batch,
#: the best validation NLL's checkpoint (a real test has ~100 stimuli, not thousands).
PANELS = {"train_on": "panels", "epochs": 40, "lr": 3e-4, "batch": 8, "folds": 4}


def plan(name: str) -> list[dict]:
    """The job lists of docs/results-real.md, in priority order.

    ``gpu``: paper-size rows (the paper's per-rating protocol per fold; logistic and CutMix
    with seeds, calibrations and ensembles; paper-fast; learning rates; every other shipped
    head; transfer between the tests; the small preset beside them to check that it ranks the
    options alike). ``cpu``: every shipped configuration with the small preset.
    """
    jobs: list[dict] = []

    def seeds_of(prefix, test, config, preset, keep=False, calibrate=(), **kw):
        ids = []
        for s in (0, 1, 2):
            job = {"id": f"{prefix}-{test}-s{s}", "test": test, "config": config,
                   "preset": preset, "seeds": [s], **PANELS, **kw}  # fmt: skip
            if keep:
                job["keep"] = True
            if calibrate:
                job["calibrate"] = list(calibrate)
            jobs.append(job)
            ids.append(job["id"])
        if keep:
            jobs.append({"id": f"{prefix}-{test}-ens", "kind": "ensemble", "members": ids,
                         "folds": PANELS["folds"]})  # fmt: skip

    if name == "gpu":
        for test in TESTS:  # the paper's protocol: one example per rating, 10 epochs, 1e-4
            group = f"ratings-{test}"
            rating = {
                "test": test,
                "config": "gml",
                "preset": "paper",
                "train_on": "ratings",
                "epochs": 10,
                "lr": 1e-4,
                "batch": 8,
                "seeds": [0],
                "group": group,
            }
            fold_jobs = [{**rating, "id": f"{group}-f{k}", "fold": k} for k in range(4)]
            jobs += fold_jobs
            jobs.append({"id": group, "kind": "collect", "group": group,
                         "members": [j["id"] for j in fold_jobs]})  # fmt: skip
        for test in TESTS:
            seeds_of("gml", test, "gml", "paper", keep=True, calibrate=("nll", "ci"))
            seeds_of("cutmix", test, "cutmix", "paper", keep=True, calibrate=("nll", "ci"))
        for test in TESTS:
            seeds_of("fast", test, "gml", "paper-fast")
            seeds_of("lr1e-4", test, "gml", "paper", lr=1e-4)
            seeds_of("lr1e-3", test, "gml", "paper", lr=1e-3)
        for src, dst in (("cvssp", "barysenka"), ("barysenka", "cvssp")):
            jobs.append({"id": f"transfer-{src}", "kind": "transfer", "train": src,
                         "test": [dst], "config": "gml", "preset": "paper",
                         "seeds": [0, 1, 2], **PANELS})  # fmt: skip
        for test in TESTS:
            for head in HEADS:
                seeds_of(head, test, head, "paper")
        for test in TESTS:
            seeds_of("small-gml", test, "gml", "small")
            seeds_of("small-cutmix", test, "cutmix", "small")
    elif name == "cpu":
        # the small preset: first what ranks against the paper-size rows, then every head,
        # then the per-rating protocol and panels with as many passes as it makes
        for config in ("gml", "cutmix"):
            for test in TESTS:
                seeds_of(f"small-{config}", test, config, "small",
                         calibrate=("nll", "ci") if config == "gml" else ())  # fmt: skip
        seeds_of("small-ratings", "barysenka", "gml", "small", train_on="ratings", epochs=10,
                 lr=1e-4)  # fmt: skip
        seeds_of("small-long", "barysenka", "gml", "small", epochs=240)
        for config in HEADS:
            for test in TESTS:
                seeds_of(f"small-{config}", test, config, "small")
        group = "small-ratings-cvssp"
        rating = {
            "test": "cvssp",
            "config": "gml",
            "preset": "small",
            "train_on": "ratings",
            "epochs": 10,
            "lr": 1e-4,
            "batch": 8,
            "seeds": [0],
            "group": group,
        }
        fold_jobs = [{**rating, "id": f"{group}-f{k}", "fold": k} for k in range(4)]
        jobs += fold_jobs
        jobs.append({"id": group, "kind": "collect", "group": group,
                     "members": [j["id"] for j in fold_jobs]})  # fmt: skip
        seeds_of("small-long", "cvssp", "gml", "small", epochs=240)
        for src, dst in (("cvssp", "barysenka"), ("barysenka", "cvssp")):
            jobs.append({"id": f"small-transfer-{src}", "kind": "transfer", "train": src,
                         "test": [dst], "config": "gml", "preset": "small",
                         "seeds": [0, 1, 2], **PANELS})  # fmt: skip
    else:
        raise SystemExit(f"unknown plan {name!r}; expected gpu or cpu")
    return jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--jobs", required=True, help="JSON lines, one job each, in priority order")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    r.add_argument("--deadline", type=float, default=3600.0, help="seconds")
    j = sub.add_parser("job")
    j.add_argument("spec")
    pl = sub.add_parser("plan", help="write a named job list (gpu, cpu) as JSON lines")
    pl.add_argument("name")
    pl.add_argument("--out", required=True)
    for q in (r, j):
        q.add_argument("--manifests", required=True)
        q.add_argument("--root", required=True)
    args = p.parse_args()
    if args.cmd == "plan":
        jobs = plan(args.name)
        Path(args.out).write_text("".join(json.dumps(j) + "\n" for j in jobs))
        print(f"{len(jobs)} jobs -> {args.out}")
        return
    if args.cmd == "job":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        run_job(json.loads(args.spec), Path(args.manifests), Path(args.root))
        return
    jobs = [json.loads(line) for line in Path(args.jobs).read_text().splitlines() if line.strip()]
    ids = [job["id"] for job in jobs]
    if len(set(ids)) != len(ids):
        raise SystemExit("job ids must be unique")
    # a job that finished in an earlier run is not run again (delete its results to redo it)
    results = Path(args.root) / "results"
    finished = {
        p.parent.name
        for p in results.glob("*/status.json")
        if json.loads(p.read_text()).get("done")
    }
    run_pool([job for job in jobs if job["id"] not in finished], args)


if __name__ == "__main__":
    main()

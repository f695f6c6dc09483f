"""Training steps per second of ``gml fit`` on the demo against the bare step it is made of.

The bare step is forward, NLL, backward and an Adam update of the demo's model (the
``configs/demo.yaml`` model and batch size) in a plain loop over the same batches the fit
sees first, read into memory beforehand. The fit is a
Lightning ``Trainer`` over the real data module (shuffling, collating, padding, augmenting,
logging every 10 steps, CSV logger), timed between the ends of training batches after
``--warmup`` steps. If data loading or logging held training up, the fit's rate would fall
below the bare rate; the ratio is printed.

    python benchmarks/fit_throughput.py --threads 2 --steps 30
    python benchmarks/fit_throughput.py --threads 2 --steps 10 --precision bf16-mixed
    python benchmarks/fit_throughput.py --device cuda --steps 100 --num-workers 4

On a GPU the bare loop's batches are on the GPU already (copied once, beforehand), while the
fit copies each batch from its data loader: the fair comparison for "data loading is not
the bottleneck". The first run prepares the demo (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine  # noqa: E402


def build(preset: str, lr: float):
    from gml.augment import ChannelSwap
    from gml.backbones import InSENet
    from gml.heads import LogisticHead
    from gml.module import GMLModule

    torch.manual_seed(0)
    return GMLModule(
        backbone=InSENet(preset),
        head=LogisticHead(),
        augment=[ChannelSwap(p=0.5)],
        optimizer=lambda params: torch.optim.Adam(params, lr=lr),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", help="InSENet preset (demo: small)")
    p.add_argument("--batch-size", type=int, default=32, help="demo: 32")
    p.add_argument("--steps", type=int, default=30, help="timed steps of each")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="32-true", help="32-true or bf16-mixed")
    p.add_argument("--num-workers", type=int, default=0, help="data loader workers")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import lightning as L

    from gml.data.datamodule import GMLDataModule

    dm = GMLDataModule(batch_size=args.batch_size, num_workers=args.num_workers)
    dm.prepare_data()
    dm.setup("fit")

    # -- the bare step over the same batches, read beforehand into memory
    device = torch.device(args.device)
    module = build(args.preset, 1e-3).to(device)
    opt = module.configure_optimizers()
    loader = iter(dm.train_dataloader())
    batches = [
        {k: v.to(device) if torch.is_tensor(v) else v for k, v in next(loader).items()}
        for _ in range(min(args.warmup + args.steps, len(dm.train_dataloader())))
    ]
    bf16 = args.precision.startswith("bf16")
    turn = iter(range(1 << 30))

    def bare_step() -> None:
        batch = batches[next(turn) % len(batches)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            dist = module(batch["features"])
        loss = module.head.loss(dist, batch["target"])
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    module.train()
    for _ in range(args.warmup):
        bare_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        bare_step()
    sync()
    bare = args.steps / (time.perf_counter() - t0)

    # -- the fit: the real loop with data loading, augmentation, logging
    ends: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *a, **k) -> None:
            sync()  # the step's work done, as in the bare loop
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(
            max_steps=args.warmup + args.steps,
            limit_val_batches=0,
            logger=L.pytorch.loggers.CSVLogger(tmp),
            log_every_n_steps=10,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            precision=args.precision,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            callbacks=[Clock()],
        )
        trainer.fit(build(args.preset, 1e-3), datamodule=dm)
    timed = ends[args.warmup - 1 :]
    fit = (len(timed) - 1) / (timed[-1] - timed[0])

    print(describe_machine(str(device), torch.get_num_threads()))
    shape = list(batches[0]["features"].shape)
    print(
        f"model    InSENet({args.preset!r}) + logistic head, batch {shape} (demo data), "
        f"precision {args.precision}, {args.num_workers} loader workers"
    )
    print(f"bare step loop  {bare:6.2f} steps/s")
    print(f"gml fit loop    {fit:6.2f} steps/s  ({fit / bare:.0%} of the bare rate)")


if __name__ == "__main__":
    main()

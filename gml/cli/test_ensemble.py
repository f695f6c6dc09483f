"""``gml test --ckpt A --ckpt B ...``: test several checkpoints as one ensemble listener.

The work is :func:`gml.evaluate` with a list of checkpoints; the data (manifest, folds) are
the first member's unless ``--data.manifest`` names another listening test.
"""

from __future__ import annotations

import argparse

from gml.errors import GMLError


def main(argv: list[str]) -> None:
    """Entry point of ``gml test`` with more than one ``--ckpt``."""
    p = argparse.ArgumentParser(
        prog="gml test",
        description="Test several checkpoints as one ensemble: the predictive distribution is "
        "the mixture of the members'; CIs use the listener spread, NLL and PIT the mixture.",
    )
    p.add_argument("--ckpt", action="append", required=True, help="a member (repeat)")
    p.add_argument("--data.manifest", dest="manifest", help="test on this manifest instead")
    p.add_argument(
        "--data.test_all",
        dest="test_all",
        choices=("true", "false"),
        help="every stimulus of the manifest is a test stimulus",
    )
    p.add_argument("--out", help="report folder (default: <runs' common folder>/test-ensembleM)")
    p.add_argument("--trainer.accelerator", dest="accelerator", default="auto")
    p.add_argument("--data.progress", dest="progress", choices=("true", "false"), default="true")
    args = p.parse_args(argv)
    if len(args.ckpt) < 2:
        raise GMLError("test: an ensemble needs two or more --ckpt")
    from gml import report
    from gml.evaluation import evaluate

    evaluation = evaluate(
        args.ckpt,
        args.manifest,
        test_all=None if args.test_all is None else args.test_all == "true",
        out_dir=args.out,
        accelerator=args.accelerator,
        progress=args.progress == "true",
    )
    print(f"ensemble of {len(args.ckpt)} checkpoints")
    print(report.format_evaluation(evaluation), flush=True)

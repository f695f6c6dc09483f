"""``gml calibrate``: fit a post-hoc factor on a checkpoint's predicted listener spread on its
validation stimuli and write a calibrated copy (the work is :mod:`gml.calibration`)."""

from __future__ import annotations

import argparse

#: Kept in step with gml.calibration.MIN_ITEMS (not imported: --help stays free of torch).
MIN_ITEMS = 5


def main(argv: list[str]) -> None:
    """Entry point of ``gml calibrate``."""
    p = argparse.ArgumentParser(
        prog="gml calibrate",
        description="Fit one factor on the predicted listener spread on the checkpoint's own "
        "validation stimuli, by the NLL of individual scores or by CI error (both are fitted "
        "and reported), and write a calibrated copy beside the checkpoint: NAME.ckpt -> "
        "NAME-calibrated.ckpt (RUN/best.ckpt or the run folder RUN -> "
        "RUN/best-calibrated.ckpt). Warns when the validation partition has fewer than "
        f"{MIN_ITEMS} items (too few to trust the factor).",
    )
    p.add_argument("--ckpt", required=True, help="checkpoint (best.ckpt) or run folder")
    p.add_argument(
        "--method",
        choices=("ci", "nll"),
        default="ci",
        help="factor to store: ci (default; fits the CI half-widths) or nll (the likelihood "
        "of the individual scores); docs/results-real.md compares them on real tests",
    )
    p.add_argument(
        "--out", help="calibrated checkpoint (default: NAME-calibrated.ckpt beside NAME.ckpt)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    from gml.calibration import calibrate

    path, fit = calibrate(args.ckpt, args.method, args.out, progress=not args.no_progress)
    print(
        f"validation: {fit['n_items']} item{'s' * (fit['n_items'] != 1)}, "
        f"{fit['n_stimuli']} stimuli, "
        f"{fit['n_scores']} individual scores (the factor rests on these)"
    )
    print(f"{'spread factor':<16}{'factor':>8}{'val NLL':>10}{'val CI RMSE':>13}")
    for key, label in (("none", "none"), ("nll", "by NLL"), ("ci", "by CI error")):
        factor = 1.0 if key == "none" else fit[key]
        mark = "  <- stored" if key == args.method else ""
        print(
            f"{label:<16}{factor:>8.3f}{fit['val_nll'][key]:>10.3f}"
            f"{fit['val_ci_rmse'][key]:>13.3f}{mark}"
        )
    print(f"gml: wrote {path}\nnext: gml test --ckpt {path}")

"""``gml cv``: parses its options and hands them to :mod:`gml.cv` (the library: folds,
training through :func:`gml.train.fit`, pooled tables)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from gml.errors import GMLError, Interrupted


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gml cv",
        description="Cross-validate a configuration: one model per fold (or the paper's "
        "one-model schedule), pooled metrics per listening test. Any other option "
        "(--trainer.max_epochs 5, --model.head ...) is passed on to 'gml fit'.",
    )
    p.add_argument("--config", action="append", default=[], help="fit config YAML (repeatable)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--fold", type=int, action="append", help="run only this fold (repeatable)")
    p.add_argument("--collect", action="store_true", help="only merge finished folds")
    p.add_argument("--out", help="output folder (default runs/cv/<config name>)")
    p.add_argument("--name", help="model name for tables (default: the config's file name)")
    p.add_argument("--schedule", choices=("cv", "paper"), default="cv")
    p.add_argument("--epochs-per-fold", type=int, default=10, help="paper schedule only")
    p.add_argument("--restart", action="store_true", help="retrain folds that already finished")
    p.add_argument(
        "--calibrate",
        choices=("nll", "ci"),
        help="also calibrate each fold's spread on its validation stimuli (gml calibrate) and "
        "pool the calibrated models' results into cv-calibrated/",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="models per fold (seed_everything 0..K-1), tested as one ensemble (default 1)",
    )
    return p


def overrides_of(tokens: list[str]) -> dict[str, Any]:
    """The options passed on to training (``--trainer.max_epochs 5``, ``--model.head=X``) as
    dotted keys for :func:`gml.train.fit`; values are read as YAML (``5`` a number, ``false``
    a boolean), as the ``gml fit`` command line reads them.

    Raises:
        GMLError: a token that is not ``--key value`` or ``--key=value``.
    """
    out: dict[str, Any] = {}
    k = 0
    while k < len(tokens):
        token = tokens[k]
        if not token.startswith("--") or len(token) < 3:
            raise GMLError(f"cv: unexpected argument {token!r} (options are --key value)")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            k += 1
        elif k + 1 < len(tokens):
            key, value = token[2:], tokens[k + 1]
            k += 2
        else:
            raise GMLError(f"cv: option {token} has no value")
        out[key] = _value(value)
    return out


def _value(text: str) -> Any:
    """A command-line value read as YAML, with ``1e-3`` a number too (YAML 1.1 reads it as
    text; the ``gml fit`` command line reads it as a number)."""
    if not text:
        return text
    value = yaml.safe_load(text)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", text):
        return float(text)
    return value


def main(argv: list[str]) -> None:
    """Entry point of ``gml cv``."""
    from gml.cv import CVSettings, collect_all, cross_validate, paper_schedule

    args, rest = build_parser().parse_known_args(argv)
    if not args.config and not (args.collect and args.out):
        raise GMLError("cv: --config is required (or --collect with --out)")
    name = args.name or (Path(args.config[-1]).stem if args.config else Path(args.out).name)
    out = Path(args.out or Path("runs") / "cv" / name).resolve()
    cv = CVSettings(
        config=args.config,
        overrides=overrides_of(rest),
        out=out,
        name=name,
        folds=args.folds,
        restart=args.restart,
        seeds=args.seeds,
        calibrate=args.calibrate,
        epochs_per_fold=args.epochs_per_fold,
    )
    cv.check(args.schedule)
    try:
        if args.schedule == "paper":
            paper_schedule(cv)
        elif args.collect:
            collect_all(cv)
        else:
            cross_validate(cv, only=args.fold)
    except Interrupted as err:
        # the same command continues: finished folds are kept, an interrupted one resumes
        err.resume = continue_command(argv, out)
        raise


def continue_command(argv: list[str], out: Path) -> str:
    """The ``gml cv`` command that continues an interrupted one: the same arguments, with the
    output folder named and without ``--restart`` (which would train finished folds again)."""
    args = [a for a in argv if a != "--restart"]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return "gml cv " + shlex.join(args)

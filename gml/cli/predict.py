"""``gml predict``: score reference/coded audio pairs with a trained listener.

Four input forms (exactly one)::

    gml predict --ckpt M --reference ref.wav --coded cod.wav [--listeners N] [--out x.json|x.csv]
    gml predict --ckpt M --pairs pairs.csv --out preds.csv
    gml predict --ckpt M --reference-dir R --coded-dir C [--out preds.csv]
    gml predict --ckpt M [--manifest m.csv]      (default: the checkpoint's own manifest)

The figures and the file schema are documented in README.md ("Scoring audio"); the work is
done by :class:`gml.listener.Listener`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gml.cli.common import add_listener_arguments, load_listener
from gml.errors import GMLError

if TYPE_CHECKING:  # pandas is imported when a command runs, so that --help answers at once
    import pandas as pd


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gml predict",
        description="Predict the MUSHRA listening-test result (mean, listener spread, 95 % CI "
        "for N listeners, quantiles) of reference/coded audio pairs with a trained listener.",
    )
    g = p.add_argument_group("input (one form)")
    g.add_argument("--reference", help="reference audio file (with --coded)")
    g.add_argument("--coded", help="coded audio file (with --reference)")
    g.add_argument(
        "--pairs",
        help="CSV with columns reference, coded (paths relative to the CSV); other columns "
        "are carried through to the output",
    )
    g.add_argument("--reference-dir", help="folder of references (with --coded-dir)")
    g.add_argument("--coded-dir", help="folder of coded files, matched to references by name")
    g.add_argument(
        "--manifest",
        help="listening-test manifest: every stimulus, with the subjective statistics beside "
        "the prediction (default when no other input: the checkpoint's own manifest)",
    )
    p.add_argument("--listeners", type=int, default=20, help="panel size N for the CI (default 20)")
    p.add_argument("--out", help="output file: .json or .csv (by suffix)")
    p.add_argument(
        "--simulate", type=int, default=0, metavar="K", help="add K simulated panels of N listeners"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated panels")
    p.add_argument("--per-window", action="store_true", help="show each analysis window")
    add_listener_arguments(p)
    return p


def main(argv: list[str]) -> None:
    """Entry point of ``gml predict``."""
    args = build_parser().parse_args(argv)
    import pandas as pd  # imported after parsing, so that --help answers at once

    from gml.pairs import match_dirs, read_pairs

    forms = {
        "--reference/--coded": args.reference is not None or args.coded is not None,
        "--pairs": args.pairs is not None,
        "--reference-dir/--coded-dir": args.reference_dir is not None or args.coded_dir is not None,
        "--manifest": args.manifest is not None,
    }
    chosen = [k for k, v in forms.items() if v]
    if len(chosen) > 1:
        raise GMLError(f"predict: give one input form, not {' and '.join(chosen)}")
    if args.listeners < 2:
        raise GMLError(f"predict: --listeners {args.listeners}; expected 2 or more")
    if args.simulate < 0:
        raise GMLError(f"predict: --simulate {args.simulate}; expected 0 or more")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".json", ".csv"):
        raise GMLError(f"predict: --out {out}: expected a .json or .csv file name")
    if out is not None:
        try:  # a folder that cannot be made is reported before any scoring
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GMLError(f"--out {out}: cannot create its folder ({err.strerror})") from None
    # check every input before loading the model, so mistakes answer at once
    if forms["--reference/--coded"]:
        if args.reference is None or args.coded is None:
            raise GMLError("predict: --reference and --coded go together")
        refs, cods, extra = [args.reference], [args.coded], None
        for path in (args.reference, args.coded):
            if not Path(path).is_file():
                raise GMLError(f"{path}: audio file not found")
    elif forms["--pairs"]:
        refs, cods, extra = read_pairs(args.pairs)
    elif forms["--reference-dir/--coded-dir"]:
        if args.reference_dir is None or args.coded_dir is None:
            raise GMLError("predict: --reference-dir and --coded-dir go together")
        match = match_dirs(args.reference_dir, args.coded_dir)
        _report_lonely(match, "gml predict")
        refs, cods, extra = match.references, match.coded, pd.DataFrame({"name": match.names})
    else:
        predict_manifest(args, out)
        return

    listener = load_listener(args)
    progress = None if not args.no_progress else False
    if forms["--reference/--coded"]:
        pred = listener.predict(
            refs[0], cods[0], args.listeners, per_window=args.per_window, progress=progress
        )
        panels = None
        if args.simulate:
            from gml.scoring.statistics import Panels, simulate_panels

            panels = Panels(
                simulate_panels(pred.distribution, args.listeners, args.simulate, args.seed)
            )
        print(format_single(pred, panels))
        if out is not None:
            write_single(out, pred, panels)
            print(f"gml: wrote {out}")
        return
    frame = listener.predict(
        refs,
        cods,
        args.listeners,
        per_window=args.per_window,
        distributions=args.simulate > 0,
        progress=progress,
    )
    if args.simulate:
        frame = add_simulation(frame, args)
    if extra is not None:
        # the user's columns first; reference/coded are given as resolved paths, and a user
        # column that shares a name with an output column is kept as input_<name>
        extra = extra.drop(columns=["reference", "coded"], errors="ignore").reset_index(drop=True)
        extra = extra.rename(columns={c: f"input_{c}" for c in extra.columns if c in frame})
        frame = pd.concat([extra, frame], axis=1)
    print(format_many(frame))
    if out is not None:
        write_frame(out, frame)
        print(f"gml: wrote {out} ({len(frame)} pairs)")


def _report_lonely(match, prog: str) -> None:
    """List files that found no partner on stderr (they are left out)."""
    for what, names in (
        ("no coded file for {n} reference(s)", match.lonely_references),
        ("no reference for {n} coded file(s)", match.lonely_coded),
    ):
        if names:
            print(f"{prog}: {what.format(n=len(names))}: {', '.join(names)}", file=sys.stderr)


# -- manifest form -------------------------------------------------------------------------


def predict_manifest(args, out: Path | None) -> None:
    """Every stimulus of a manifest, subjective statistics beside the predictions; the
    checkpoint's own manifest (with each stimulus's train/val/test partition) by default."""
    import numpy as np

    from gml import report
    from gml.checkpoint import build_datamodule, resolve_checkpoint
    from gml.data.manifest import Manifest
    from gml.stats import STIMULUS_KEY

    ckpt = resolve_checkpoint(args.ckpt[0])  # an ensemble's data: its first member's
    own = args.manifest is None
    if own:
        dm = build_datamodule(ckpt, progress=False)
        manifest = Manifest.read(dm.manifest_path())
    else:
        manifest = Manifest.read(args.manifest)
    stimuli = manifest.stimuli()
    if own:
        stimuli["partition"] = dm.assign_partition(stimuli)
    listener = load_listener(args)
    frame = listener.predict(
        stimuli["reference"].tolist(),
        stimuli["coded"].tolist(),
        args.listeners,
        progress=None if not args.no_progress else False,
    )
    # the CI is for the stimulus's own panel size, so that it compares with the subjective one
    from gml.stats import ci_halfwidth

    n = stimuli["n_listeners"].to_numpy()
    preds = {
        "index": np.arange(len(stimuli)),
        "pred_mean": frame["mean"].to_numpy(),
        "pred_std": frame["std"].to_numpy(),
        "pred_ci": ci_halfwidth(frame["std"].to_numpy(), n),
    }
    table = report.predictions_frame(stimuli, preds, manifest.ratings, with_partition=own)
    # (ci95_low/high are for --listeners; the table's predicted CI is each stimulus's own)
    keyed = frame.drop(
        columns=[
            "mean",
            "std",
            "ci95",
            "ci95_low",
            "ci95_high",
            "n_listeners",
            "reference",
            "coded",
        ]
    )
    key = list(STIMULUS_KEY)
    keyed[key] = stimuli[key].to_numpy()
    table = table.merge(keyed, on=key, how="left")
    if out is None:
        out = ckpt.resolve().parent / f"predict-{ckpt.stem}" / "predictions.csv"
    write_frame(out, table)
    print(report_summary(table))
    print(f"gml: wrote {out} ({len(table)} stimuli)")


def report_summary(table: pd.DataFrame) -> str:
    """Per test: stimuli, and the correlation of predicted and subjective means."""
    lines = []
    for test, g in table.groupby("test"):
        ok = g[["predicted_mean", "subjective_mean"]].dropna()
        r = ok.corr().iloc[0, 1] if len(ok) > 1 else float("nan")
        lines.append(f"{test}: {len(g)} stimuli, Pearson(predicted, subjective mean) {r:.3f}")
    return "\n".join(lines)


# -- simulation ----------------------------------------------------------------------------


def add_simulation(frame: pd.DataFrame, args) -> pd.DataFrame:
    """Columns summarising ``--simulate K`` panels per pair (from the predictions'
    ``distribution`` column, which is dropped): the 2.5 / 50 / 97.5 % percentiles of the
    panel means and the median panel CI half-width."""
    import numpy as np
    import pandas as pd

    from gml.scoring.statistics import Panels, simulate_panels

    rows = []
    for k, dist in enumerate(frame["distribution"]):
        panels = Panels(simulate_panels(dist, args.listeners, args.simulate, args.seed + k))
        lo, mid, hi = np.percentile(panels.means, [2.5, 50, 97.5])
        rows.append(
            {
                "sim_panels": args.simulate,
                "sim_mean_p2_5": lo,
                "sim_mean_p50": mid,
                "sim_mean_p97_5": hi,
                "sim_ci95_median": float(np.nanmedian(panels.ci95)),
            }
        )
    return pd.concat([frame.drop(columns=["distribution"]), pd.DataFrame(rows)], axis=1)


# -- output --------------------------------------------------------------------------------


def format_single(pred, panels=None) -> str:
    """Readable figures of one pair."""
    import numpy as np

    low, high = f"{pred.ci95_low:.1f}", f"{pred.ci95_high:.1f}"
    # the interval is always the one of scores as a slider records them (ci95_low/high); the
    # model's half-width is shown beside it only where the two agree (to the printed digit)
    symmetric = (
        abs(pred.ci95_low - (pred.mean - pred.ci95)) < 0.05
        and abs(pred.ci95_high - (pred.mean + pred.ci95)) < 0.05
    )
    lines = [
        f"reference  {pred.reference}  ({pred.reference_rate} Hz, {pred.reference_channels} ch)",
        f"coded      {pred.coded}  ({pred.coded_rate} Hz, {pred.coded_channels} ch)",
        f"predicted mean score   {pred.mean:6.1f}"
        + ("  (clamped to 0-100)" if pred.clamped else ""),
        f"listener std           {pred.std:6.1f}",
        f"95 % CI, {pred.n_listeners:>3} listeners  "
        + (f"±{pred.ci95:5.1f}  " if symmetric else "")
        + f"[{low}, {high}]",
        f"listener quantiles     5 %: {pred.q05:.1f}  25 %: {pred.q25:.1f}  50 %: {pred.q50:.1f}  "
        f"75 %: {pred.q75:.1f}  95 %: {pred.q95:.1f}",
        f"analysed               {pred.duration:.1f} s in {pred.windows} window(s)",
    ]
    if pred.p_outside > 0.01:
        lines.append(f"note: the model puts {pred.p_outside:.0%} of its probability outside 0-100")
    if not symmetric:
        cut = pred.ci95_low <= 0.0 or pred.ci95_high >= 100.0
        lines.append(
            "note: the CI is that of scores as a slider records them (the predicted "
            f"distribution clipped to 0-100: mean {pred.slider_mean:.1f}, SD "
            f"{pred.slider_std:.1f})"
            + (", cut at the end of the scale" if cut else "")
            + f"; the model's own ±{pred.ci95:.1f} around {pred.mean:.1f} does not describe "
            "them near the ends"
        )
    if pred.per_window is not None:
        lines.append("windows:\n" + pred.per_window.to_string(index=False, float_format="%.2f"))
    if panels is not None:
        lo, hi = np.percentile(panels.means, [2.5, 97.5])
        lines.append(
            f"{len(panels.means)} simulated panels of {panels.scores.shape[1]}: panel means "
            f"95 % range [{lo:.1f}, {hi:.1f}], median CI ±{np.nanmedian(panels.ci95):.1f}"
        )
    return "\n".join(lines)


def format_many(frame: pd.DataFrame) -> str:
    cols = [c for c in ("name", "coded", "mean", "std", "ci95", "q05", "q50", "q95") if c in frame]
    shown = frame[cols].copy()
    if "name" in shown and "coded" in shown:
        shown = shown.drop(columns=["coded"])
    elif "coded" in shown:
        shown["coded"] = shown["coded"].map(lambda p: Path(p).name)
    return shown.to_string(index=False, float_format=lambda v: f"{v:.1f}")


def write_single(out: Path, pred, panels=None) -> None:
    import pandas as pd

    from gml.atomic import atomic_write_text

    if out.suffix.lower() == ".json":
        obj = pred.to_dict()
        if panels is not None:
            obj["panels"] = [
                {"mean": float(m), "ci95": float(c), "scores": s.round(2).tolist()}
                for m, c, s in zip(panels.means, panels.ci95, panels.scores)
            ]
        atomic_write_text(out, strict_json(obj))
    else:
        write_frame(
            out, pd.DataFrame([pred.to_dict()]).drop(columns=["per_window"], errors="ignore")
        )


#: Between the lines of a pair's ``warnings`` in a CSV cell.
WARNINGS_SEPARATOR = " | "


def write_frame(out: Path, frame: pd.DataFrame) -> None:
    """CSV or JSON (a list of records) by suffix, atomically. In CSV a pair's ``warnings``
    are one cell, joined by :data:`WARNINGS_SEPARATOR`."""
    from gml.atomic import atomic_write_text

    if out.suffix.lower() == ".json":
        records = json.loads(frame.to_json(orient="records", default_handler=str))
        atomic_write_text(out, strict_json(records))
    else:
        flat = frame.drop(columns=["per_window"], errors="ignore")
        if "warnings" in flat:
            flat = flat.assign(
                warnings=[
                    WARNINGS_SEPARATOR.join(w) if isinstance(w, list) else w
                    for w in flat["warnings"]
                ]
            )
        atomic_write_text(out, flat.to_csv(index=False, float_format="%.4f"))


def strict_json(obj) -> str:
    """``obj`` as standard JSON text: NaN and infinities (a single model's ``model_std``, a
    CI without listeners) become ``null``, which every JSON parser reads (``NaN`` is
    Python's extension, which JavaScript's ``JSON.parse`` and strict parsers refuse)."""
    import math

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), indent=2, allow_nan=False) + "\n"

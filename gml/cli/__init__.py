"""The ``gml`` command. Thin: it parses arguments, chooses folders and prints; the work is
library code (:mod:`gml.listener`, :mod:`gml.evaluation`, :mod:`gml.checkpoint`).

``fit``, ``validate`` and ``test`` run through LightningCLI (:mod:`gml.cli.lightning`); the
other commands are one module each, imported only when used.
"""

from __future__ import annotations

import importlib
import os
import sys
from argparse import ArgumentError

from gml.configs import config_stack, configs_dir, resolve_config
from gml.errors import GMLError, Interrupted

#: gml's own commands: name → (module with ``main(argv)``, one-line description).
EXTRA_COMMANDS = {
    "predict": ("gml.cli.predict", "score reference/coded audio pairs with a trained listener"),
    "compare": ("gml.cli.compare", "compare two codecs over the same references (A - B)"),
    "calibrate": ("gml.cli.calibrate", "fit a factor on the predicted listener spread"),
    "import": (
        "gml.cli.import_",
        "listening-test results (webMUSHRA, BeaqleJS, ODAQ XML, CSV) → manifest",
    ),
    "features": ("gml.cli.features", "precompute a manifest's features into the cache"),
    "cv": (
        "gml.cli.cv",
        "k-fold cross-validation: one model per fold, pooled metrics per test set",
    ),
    "table": ("gml.cli.table", "Table-I-style comparison of several runs (Markdown / CSV)"),
    "configs": ("gml.cli.configs", "list the configurations shipped with gml"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test")


def __getattr__(name: str):
    # `from gml.cli import GMLCLI, run` keeps working without importing Lightning for `gml -h`
    if name in ("GMLCLI", "run", "run_folder"):
        return getattr(importlib.import_module("gml.cli.lightning"), name)
    raise AttributeError(name)


#: Lightning warnings that gml triggers by design (filtered by :func:`quiet_warnings`).
_QUIET = (
    # gml applies augmentations in the module on purpose (on the batch's device).
    r".*overridden `on_after_batch_transfer` in `LightningModule`.*",
    # the run folder holds config.yaml and metrics.csv beside the checkpoints by design.
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    # gml fit --resume keeps the run's metrics.csv aside while the CSV logger starts.
    r".*Experiment logs directory .* exists and is not empty.*",
    # evaluating a copied/moved run: the checkpoint's own folder replaces the one it recorded.
    r".*The dirpath has changed from.*",
    # main() hands LightningCLI the (possibly rewritten) argv on purpose.
    r".*LightningCLI's args parameter is intended to run from within Python.*",
    # checkpoints carry the state of gml fit's resume callback; evaluating does not need it.
    r".*callbacks used to create the checkpoint need to be provided.*\['ResumePoint'\]",
)


def quiet_warnings(verbose: bool = False) -> None:
    """Silence the Lightning warnings that gml triggers by design (see ``_QUIET``) and, unless
    ``verbose``, Lightning's informational messages (accelerator lines, "litlogger" tips,
    "`weights_only` was not set", "Restoring states from the checkpoint"): gml prints what a
    run needs (its folder, its results) itself.

    Those messages are log records at INFO level, not Python warnings (``PYTHONWARNINGS``
    does not reach them), and importing Lightning gives its loggers a handler and the INFO
    level of their own; so records at INFO and below are disabled for the process, whether
    Lightning is imported before or after. Warnings and errors are still shown.
    """
    import logging
    import warnings

    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    logging.disable(logging.NOTSET if verbose else logging.INFO)


def _resolve_config_args(argv: list[str]) -> list[str]:
    """Every ``--config`` value resolved to its files (:func:`gml.configs.config_stack`: a
    shipped variant is preceded by its base), as ``--config FILE`` pairs."""
    out: list[str] = []
    given: list[str] = []
    k = 0
    while k < len(argv):
        a = argv[k]
        if a == "--config" and k + 1 < len(argv):
            value, k = argv[k + 1], k + 2
        elif a.startswith("--config="):
            value, k = a.split("=", 1)[1], k + 1
        else:
            out.append(a)
            k += 1
            continue
        before = config_stack(given)
        given.append(value)
        for path in config_stack(given)[len(before) :]:
            out += ["--config", path]
    return out


_default_showwarning = None


def _is_ckpt(arg: str) -> bool:
    return arg in ("--ckpt", "--ckpt_path") or arg.startswith(("--ckpt=", "--ckpt_path="))


def _one_line(message: str) -> str:
    """Condense jsonargparse's nested multi-line reasons to the informative part."""
    import re

    key = re.match(r'\s*(Parser key "[^"]+"):', message)
    cls = re.search(
        r"Problem with given class_path '([^']+)':\s*(.+?)(?:\n\s*-|\n\s*Given|$)", message, re.S
    )
    if key and cls:
        return f"{key.group(1)}: cannot use class_path '{cls.group(1)}': {' '.join(cls.group(2).split())}"
    return " ".join(message.split())


LIGHTNING_HELP = {
    "fit": "train a listener (LightningCLI: --config, --trainer.*, --model.*, --data.*)",
    "validate": "one validation epoch of a trained run (--ckpt RUN/best.ckpt)",
    "test": "per-test-set metrics, predictions.csv, plots (--ckpt RUN/best.ckpt [--ckpt ...])",
}


def _top_level_help() -> str:
    from gml.version import __version__

    width = max(map(len, [*LIGHTNING_HELP, *EXTRA_COMMANDS]))
    lines = [
        f"usage: gml <command> [options]      (gml {__version__})",
        "",
        "Generative Machine Listener: predicts the distribution of MUSHRA listener scores",
        "(mean, spread, 95 % CI for N listeners) for reference/coded audio pairs.",
        "",
        "commands:",
        *(f"  {n:<{width}}  {t}" for n, t in LIGHTNING_HELP.items()),
        *(f"  {n:<{width}}  {t}" for n, (_, t) in EXTRA_COMMANDS.items()),
        "",
        "'gml <command> --help' lists a command's options; --debug shows tracebacks;",
        "--verbose keeps Lightning's start-up messages.",
        "Quick start: gml fit --config demo   then   gml test --ckpt runs/demo/version_0",
    ]
    return "\n".join(lines)


def emit(line: str, file=None) -> None:
    """Print one line for the user on its own line, also while progress bars are drawn: tqdm
    clears the bars, prints the line, and draws them again below it (a plain print would
    land at the end of a bar's line)."""
    file = file or sys.stderr
    tqdm_module = sys.modules.get("tqdm")  # only when bars can exist, so --help stays light
    if tqdm_module is not None:
        tqdm_module.tqdm.write(line, file=file)
    else:
        print(line, file=file, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from gml.errors import GMLWarning

    if issubclass(category, GMLWarning):  # about the user's input: one line, no source location
        emit(f"gml: warning: {message}", file or sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gml`` command."""
    import warnings

    entry = argv is None  # the process's own command, not a call from Python

    global _default_showwarning
    if warnings.showwarning is not _show_warning:
        _default_showwarning = warnings.showwarning
        warnings.showwarning = _show_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("GML_DEBUG")) or "--debug" in argv
    verbose = "--verbose" in argv
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    quiet_warnings(verbose)
    restore = _stop_on_signals() if argv and argv[0] in (*LIGHTNING_COMMANDS, "cv") else {}
    try:
        argv = _resolve_config_args(argv)
        if argv and argv[0] == "test" and sum(_is_ckpt(a) for a in argv) > 1:
            from gml.cli.test_ensemble import main as test_ensemble

            test_ensemble(argv[1:])
            return
        if argv and argv[0] in EXTRA_COMMANDS:
            importlib.import_module(EXTRA_COMMANDS[argv[0]][0]).main(argv[1:])
            return
        if not argv or argv[0] in ("-h", "--help"):
            # answered without importing torch or Lightning, so it is instant
            print(_top_level_help())
            if not argv:
                sys.exit(2)
            return
        if argv[0] in LIGHTNING_COMMANDS:
            from gml.cli.precheck import precheck

            precheck(argv)  # missing files answer before Lightning is imported
        from gml.cli.lightning import run

        run(argv)
    except Interrupted as err:
        _close_bars()  # the line is the last thing printed, not followed by a redrawn bar
        print(interrupted_line(err, argv[0] if argv else ""), file=sys.stderr, flush=True)
        sys.exit(err.code)
    except (GMLError, ArgumentError) as err:  # jsonargparse raises argparse's ArgumentError
        _fail(err, debug, argv)
    except OSError as err:  # a full disk, a folder without write permission: one line too
        _fail(err, debug, argv)
    except KeyboardInterrupt:
        print("gml: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        _restore_signals(restore)
        if entry:
            _before_exit()


def _before_exit() -> None:
    """The command is over and the process ends next: collect what is garbage now (anything
    left open in a reference cycle is closed), then freeze what is left, so that the
    interpreter's shutdown does not walk torch's objects again (about half a second of a
    `gml predict`, ``docs/performance.md``). Never done for ``main(argv)`` called from Python,
    whose process goes on."""
    import gc

    gc.collect()
    gc.freeze()


def _close_bars() -> None:
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is not None:
        for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
            bar.close()


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def _stop_on_signals() -> dict:
    """SIGINT and SIGTERM raise :class:`~gml.errors.Interrupted` (exit 130 / 143 with one
    line) instead of a silent exit 1 (Lightning's Ctrl-C) or exit 0 (its SIGTERM). While a
    model trains, :class:`gml.checkpoint.ResumePoint` takes them over and stops at the next
    batch with a ``last.ckpt``. Returns the previous handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict) -> None:
    import signal

    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def interrupted_line(err: Interrupted, command: str = "") -> str:
    """The one line ``gml`` prints for an :class:`~gml.errors.Interrupted` command."""
    where = f" at epoch {err.epoch} step {err.step}" if err.epoch is not None else ""
    if err.resume:
        return f"gml: interrupted{where}; resume with: {err.resume}"
    if command == "fit":
        return "gml: interrupted before the first checkpoint; nothing to resume (run it again)"
    return "gml: interrupted"


def _fail(err: Exception, debug: bool, argv: list[str]) -> None:
    if debug:
        raise err
    message = _one_line(str(err))
    if isinstance(err, ArgumentError):
        sub = argv[0] if argv and argv[0] in LIGHTNING_COMMANDS else ""
        message += f" (see 'gml {sub} --help')".replace("  ", " ")
    emit(f"gml: error: {message}", sys.stderr)
    sys.exit(2)


__all__ = [
    "EXTRA_COMMANDS",
    "configs_dir",
    "emit",
    "interrupted_line",
    "main",
    "quiet_warnings",
    "resolve_config",
]

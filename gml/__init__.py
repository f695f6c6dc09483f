"""gml: the Generative Machine Listener.

Predicts the distribution of MUSHRA listener scores (0-100) for a pair of reference and coded
audio signals.
"""

from gml.version import __version__

__all__ = ["__version__", "evaluate", "load"]


def load(ckpt, device=None, **kwargs):
    """Load a trained listener: ``gml.load("runs/demo/version_0/best.ckpt").predict(ref, coded)``.

    See :func:`gml.listener.load`.
    """
    from gml.checkpoint_path import check_checkpoint_file, resolve_checkpoint

    # a file that is no checkpoint is refused before torch is imported (in well under 1 s)
    for path in ckpt if isinstance(ckpt, (list, tuple)) else [ckpt]:
        check_checkpoint_file(resolve_checkpoint(path))
    from gml.listener import load as _load

    return _load(ckpt, device=device, **kwargs)


def evaluate(model, manifest=None, **kwargs):
    """Test a checkpoint and write its reports, as ``gml test --ckpt`` does.

    See :func:`gml.evaluation.evaluate`.
    """
    from gml.evaluation import evaluate as _evaluate

    return _evaluate(model, manifest, **kwargs)

"""Distribution heads. Add your own by subclassing :class:`DistributionHead` in any module and
naming it by ``class_path`` in YAML; the registry here is only a convenience for short names."""

from __future__ import annotations

from gml.heads.base import DistributionHead, positive_scale
from gml.heads.beta import BetaHead, ScaledBeta
from gml.heads.censored import (
    CensoredGaussianHead,
    CensoredHead,
    CensoredLocationScale,
    CensoredLogistic,
    CensoredLogisticHead,
    CensoredNormal,
)
from gml.heads.distributions import EqualMixture, Logistic, PointMass, SpreadScaled
from gml.heads.gaussian import GaussianHead
from gml.heads.location_scale import LocationScaleHead
from gml.heads.logistic import LogisticHead
from gml.heads.mixture import LocationScaleMixture, MixtureHead
from gml.heads.point import PointHead

_BUILTIN = {
    "logistic": LogisticHead,
    "gaussian": GaussianHead,
    "point": PointHead,
    "censored_logistic": CensoredLogisticHead,
    "censored_gaussian": CensoredGaussianHead,
    "beta": BetaHead,
    "mixture": MixtureHead,
}


def _is_concrete(cls: type[DistributionHead]) -> bool:
    """A head that can produce a distribution (not an intermediate base class)."""
    if issubclass(cls, LocationScaleHead):
        return hasattr(cls, "distribution_class")
    return cls.distribution is not DistributionHead.distribution


def list_heads() -> dict[str, type[DistributionHead]]:
    """Short names of the built-in heads plus every imported :class:`DistributionHead` subclass.

    A user's subclass appears here (under its lower-case class name) once its module is
    imported; selecting it from YAML needs no registration at all.
    """
    found: dict[str, type[DistributionHead]] = dict(_BUILTIN)
    stack = list(DistributionHead.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls not in found.values() and _is_concrete(cls):
            found[cls.__name__.lower()] = cls
    return found


def get_head(name: str, **kwargs) -> DistributionHead:
    """Instantiate a head by short name (``"logistic"``, ``"gaussian"``, ``"point"``,
    ``"censored_logistic"``, ``"censored_gaussian"``, ``"beta"``, ``"mixture"``) or by dotted
    ``class_path``.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    heads = list_heads()
    if name.lower() in heads:
        return heads[name.lower()](**kwargs)
    if "." in name:
        import importlib

        module, _, cls_name = name.rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        if not (isinstance(cls, type) and issubclass(cls, DistributionHead)):
            raise KeyError(f"{name} is not a DistributionHead subclass")
        return cls(**kwargs)
    raise KeyError(f"unknown head {name!r}; known: {', '.join(sorted(heads))}")


__all__ = [
    "BetaHead",
    "CensoredGaussianHead",
    "CensoredHead",
    "CensoredLocationScale",
    "CensoredLogistic",
    "CensoredLogisticHead",
    "CensoredNormal",
    "DistributionHead",
    "EqualMixture",
    "GaussianHead",
    "Logistic",
    "LocationScaleHead",
    "LocationScaleMixture",
    "LogisticHead",
    "MixtureHead",
    "PointHead",
    "PointMass",
    "ScaledBeta",
    "SpreadScaled",
    "get_head",
    "list_heads",
    "positive_scale",
]

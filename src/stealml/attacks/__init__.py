"""Extraction attacks, one file per family, registered by name."""

from __future__ import annotations

from stealml.attacks.adaptive import RetrainAdaptive
from stealml.attacks.base import Attack, ExtractionResult, Querier
from stealml.attacks.ensemble_paths import EnsemblePaths
from stealml.attacks.equations import EquationSolving
from stealml.attacks.feature_discovery import FeatureDiscovery
from stealml.attacks.functional import FunctionallyEquivalent
from stealml.attacks.lowd_meek import LowdMeek
from stealml.attacks.path_finding import PathFinding
from stealml.attacks.retraining import RetrainLineSearch, RetrainUniform
from stealml.attacks.substitute import SubstituteJacobian, SubstituteKnockoff
from stealml.attacks.top_down import TopDown
from stealml.exceptions import ConfigurationError

__all__ = ["ATTACKS", "Attack", "EnsemblePaths", "EquationSolving", "ExtractionResult",
           "FeatureDiscovery", "FunctionallyEquivalent", "LowdMeek", "PathFinding", "Querier",
           "RetrainAdaptive", "RetrainLineSearch", "RetrainUniform", "SubstituteJacobian",
           "SubstituteKnockoff", "TopDown", "get_attack"]

ATTACKS: dict[str, type[Attack]] = {
    EquationSolving.name: EquationSolving,
    FeatureDiscovery.name: FeatureDiscovery,
    FunctionallyEquivalent.name: FunctionallyEquivalent,
    LowdMeek.name: LowdMeek,
    RetrainUniform.name: RetrainUniform,
    RetrainLineSearch.name: RetrainLineSearch,
    RetrainAdaptive.name: RetrainAdaptive,
    PathFinding.name: PathFinding,
    SubstituteJacobian.name: SubstituteJacobian,
    SubstituteKnockoff.name: SubstituteKnockoff,
    TopDown.name: TopDown,
    EnsemblePaths.name: EnsemblePaths,
}


def get_attack(name: str) -> type[Attack]:
    """The attack class registered under ``name``."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown attack {name!r}; choose one of: {', '.join(sorted(ATTACKS))}") from None

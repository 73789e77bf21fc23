"""The ``extraction`` grid task: one (data set, model, attack, budget, seed, API) cell.

A target of kind ``model`` (see :data:`stealml.targets.MODEL_KINDS`) is trained on the
data set's seeded 70% split, put behind an API that answers as the policy parameters say,
attacked by ``attack`` (any name of :data:`stealml.attacks.ATTACKS`) with a budget of
``budget`` queries or ``alpha`` × the model class's unknowns, and the stolen model is
measured on the 30% split and on ``eval_points`` uniform points of the feature space.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from stealml.attacks import ATTACKS, get_attack
from stealml.attacks.params import check_attack_params
from stealml.datasets import DATASETS, Dataset
from stealml.datasets import load as load_dataset
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.experiments.runner import describe_target
from stealml.ledger import Ledger
from stealml.metrics import R_UNIF_POINTS, fidelity
from stealml.models.tree_service import TreeService, serves_as_tree
from stealml.oracles.local import LocalOracle
from stealml.policies import ApiPolicy
from stealml.targets import MODEL_KINDS, make_target

__all__ = ["check_extraction", "extraction_cell", "trained_target"]

REQUIRED = ("data", "model", "attack")
OPTIONAL: dict[str, Any] = {
    "seed": 0, "budget": None, "alpha": None, "output": "probabilities", "top_k": None,
    "rounding": None, "price": 0.0, "incomplete": None, "defence": None,
    "eval_points": R_UNIF_POINTS, "max_leaves": None, "max_depth": None,
    "attack_params": {},
}


def check_extraction(params: dict[str, Any]) -> None:
    """Raise ConfigurationError for a parameter the ``extraction`` task cannot use."""
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise ConfigurationError(f"an extraction job needs {', '.join(missing)}")
    unknown = set(params) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise ConfigurationError(f"unknown extraction job parameters: "
                                 f"{', '.join(sorted(unknown))} (known: "
                                 f"{', '.join([*REQUIRED, *OPTIONAL])})")
    if params["data"] not in DATASETS:
        raise ConfigurationError(f"unknown data set {params['data']!r}; choose one of: "
                                 f"{', '.join(DATASETS)}")
    if params["model"] not in MODEL_KINDS:
        raise ConfigurationError(f"unknown model kind {params['model']!r}; choose one of: "
                                 f"{', '.join(MODEL_KINDS)}")
    if params["attack"] not in ATTACKS:
        raise ConfigurationError(f"unknown attack {params['attack']!r}; choose one of: "
                                 f"{', '.join(sorted(ATTACKS))}")
    if params.get("budget") is not None and params.get("alpha") is not None:
        raise ConfigurationError("give budget or alpha, not both")
    if params.get("defence") not in (None, "none"):
        raise ConfigurationError(f"unknown defence {params['defence']!r}")
    attack_params = params.get("attack_params", {})
    if not isinstance(attack_params, dict):
        raise ConfigurationError("attack_params must be a table of parameter = value")
    check_attack_params(ATTACKS[params["attack"]], attack_params)
    _policy({**OPTIONAL, **params})


def _policy(p: dict[str, Any]) -> ApiPolicy:
    return ApiPolicy(output=p["output"], top_k=p["top_k"], rounding=p["rounding"],
                     price=float(p["price"]), incomplete=p["incomplete"] or "reject")


@lru_cache(maxsize=4)
def trained_target(data: str, model: str, seed: int, max_leaves: int | None = None,
                   max_depth: int | None = None) -> tuple[Dataset, Any]:
    """The data set's seeded split and a ``model`` target fitted on its 70% (cached, so
    the jobs of one worker that share a target train it once)."""
    ds = load_dataset(data, random_state=seed)
    n_classes = None if ds.task == "regression" else len(np.unique(ds.y))
    target = make_target(model, ds.task, n_classes, seed, max_leaves, max_depth)
    target.fit(ds.X_train, ds.y_train)
    return ds, target


def extraction_cell(**params: Any) -> dict[str, Any]:
    """Run one extraction cell; returns queries, cost, completeness, fidelity, seconds."""
    check_extraction(params)
    p = {**OPTIONAL, **params}
    ds, target = trained_target(p["data"], p["model"], int(p["seed"]), p["max_leaves"],
                                p["max_depth"])
    attack_cls = get_attack(p["attack"])
    if not attack_cls.supports(target):
        raise UnsupportedModelError(f"attack {p['attack']!r} does not apply to a "
                                    f"{type(target).__name__} target")
    attack = attack_cls(random_state=int(p["seed"]),  # type: ignore[call-arg]
                        **check_attack_params(attack_cls, p["attack_params"]))
    describe_target(attack, target, None)
    budget = p["budget"]
    if p["alpha"] is not None:
        classes = getattr(target, "classes_", None)
        unknowns = attack.n_unknowns(ds.space.n_encoded,
                                     None if classes is None else len(classes))
        budget = max(1, math.ceil(float(p["alpha"]) * unknowns))
    served = TreeService(target, ds.space) if serves_as_tree(target) else target
    policy = _policy(p)
    if served is not target and p["incomplete"] is None:
        policy = ApiPolicy(**{**policy.describe(), "incomplete": "native"})
    oracle = LocalOracle(served, ds.space, policy, ledger=Ledger(budget=budget))
    result = attack.run(oracle)
    fid = fidelity(target, result.model, ds.space, ds.X_test, int(p["eval_points"]),
                   int(p["seed"]), regression=ds.task == "regression")
    return {"budget": budget, "queries": result.queries, "cost": result.cost,
            "complete": result.complete, **fid, "seconds": result.seconds}

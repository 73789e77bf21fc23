"""One extraction against a model behind a prediction API: ``stealml extract --url``.

The attack pays for its queries through the oracle's ledger. Fidelity is then measured
with *separate* evaluation queries to the same API (``eval_queries`` uniform points of the
published feature space, and the data set's test split with ``data``), bought through a
ledger of their own: the report gives them apart and never adds them to the attack's.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from stealml.attacks import get_attack
from stealml.attacks.base import ExtractionResult
from stealml.datasets import load as load_dataset
from stealml.exceptions import ConfigurationError, FeatureCountError
from stealml.experiments.runner import ExtractionConfig, _jsonable, attack_budget, make_attack
from stealml.ledger import Ledger, Progress
from stealml.metrics import value_errors
from stealml.modelio import save_model
from stealml.oracles.base import BaseOracle
from stealml.oracles.http import HttpOracle
from stealml.oracles.oip import OipOracle
from stealml.space import FeatureSpace

__all__ = ["remote_fidelity", "remote_oracle", "run_remote"]


def remote_oracle(config: ExtractionConfig, ledger: Ledger) -> BaseOracle:
    """The HTTP oracle for ``config.target`` (a URL) in ``config.protocol``."""
    if config.protocol == "v2":
        if config.model is None:
            raise ConfigurationError("--protocol v2 needs --model NAME")
        space = FeatureSpace.load(config.space) if config.space else None
        return OipOracle(config.target, config.model, space=space, api_key=config.api_key,
                         price=config.price, ledger=ledger,
                         batch_size=config.batch_size or 1000)
    if config.space is not None:
        raise ConfigurationError("the service publishes its features: drop --space")
    return HttpOracle(config.target, config.model, api_key=config.api_key, ledger=ledger,
                      batch_size=config.batch_size)


def remote_fidelity(oracle: BaseOracle, stolen: Any, X_unif: np.ndarray,
                    X_test: np.ndarray | None) -> dict[str, float | None]:
    """R_unif, R_test (label disagreement) and R_TV of ``stolen`` against the API's
    answers at those points (None where not measured); for an API answering regression
    values, the mean absolute and relative errors (``mae_*``, ``mre_*``) and the share of
    values reproduced (``agree_*``, to 1e-9 relative) instead."""
    out: dict[str, float | None] = {}
    regression = "values" in oracle.reveals
    for tag, X in (("unif", X_unif), ("test", X_test)):
        if X is None or not len(X):
            keys = ("mae", "mre", "agree") if regression else ("r", "tv")
            out.update({f"{k}_{tag}": None for k in keys})
            continue
        answers = oracle.query(X)
        ours = np.asarray(stolen.predict(X))
        if regression:
            truth, mine = np.asarray(answers.values, dtype=float), ours.astype(float)
            errs = value_errors(truth, mine)
            out[f"mae_{tag}"], out[f"mre_{tag}"] = errs["mae"], errs["mre"]
            out[f"agree_{tag}"] = float(np.mean(np.isclose(mine, truth, rtol=1e-9, atol=0.0)))
            continue
        out[f"r_{tag}"] = float(np.mean(answers.labels.astype(str) != ours.astype(str)))
        out[f"tv_{tag}"] = None
        if answers.probabilities is not None and hasattr(stolen, "predict_proba") and \
                answers.classes is not None and not np.isnan(answers.probabilities).any():
            index = {str(c): i for i, c in enumerate(np.asarray(stolen.classes_))}
            p = np.asarray(stolen.predict_proba(X), dtype=float)
            mine = np.zeros_like(answers.probabilities)
            for j, c in enumerate(answers.classes.astype(str)):
                if c in index:
                    mine[:, j] = p[:, index[c]]
            out[f"tv_{tag}"] = float(np.mean(0.5 * np.abs(mine - answers.probabilities)
                                             .sum(axis=1)))
    return out


def _labels_only(config: ExtractionConfig) -> ExtractionConfig:
    """``--output labels`` against a service: the attack reads its labels only, and
    ignores any probabilities it reveals (``ignore_probabilities``); an attack that has
    no such choice is refused."""
    cls = get_attack(config.attack)
    if "ignore_probabilities" not in inspect.signature(cls).parameters:
        raise ConfigurationError(f"--output labels with --url reads the service's labels "
                                 f"only, but attack {config.attack!r} reads what the "
                                 f"service reveals; drop --output labels")
    params = dict(config.attack_params)
    params.setdefault("ignore_probabilities", True)
    return replace(config, attack_params=tuple(params.items()))


def run_remote(config: ExtractionConfig,
               progress: Progress | None = None) -> tuple[ExtractionResult, dict[str, Any]]:
    """Run ``config.attack`` against the API at ``config.target``; measure; save."""
    local_only = {"--top-k": config.top_k, "--noise": config.noise,
                  "--reverse-sigmoid": config.reverse_sigmoid,
                  "--rounding": config.rounding,
                  "--output top-k": True if config.output == "top-k" else None,
                  "--monitor": config.monitors or None}
    given = [flag for flag, value in local_only.items() if value is not None]
    if given:
        raise ConfigurationError(f"{', '.join(given)} configure the API of a local --target; "
                                 "a service at --url sets its own defences (stealml serve)")
    if config.output == "labels":  # the attacker reads the service's labels only
        config = _labels_only(config)
    attack = make_attack(config)
    oracle = remote_oracle(config, Ledger())
    classes = oracle.classes
    budget = attack_budget(config, attack, oracle.space,
                           None if classes is None else len(classes))
    oracle.ledger = Ledger(budget=budget, log=config.log, progress=progress)
    try:
        result = attack.run(oracle)
    finally:
        oracle.ledger.close()
    X_test = None
    if config.data is not None:
        X_test = load_dataset(config.data, random_state=config.seed).X_test
        if X_test.shape[1] != oracle.space.n_encoded:
            raise FeatureCountError(f"data set {config.data} has {X_test.shape[1]} features, "
                                    f"but the API's space has {oracle.space.n_encoded}")
    evaluation = Ledger()
    oracle.ledger = evaluation
    X_unif = oracle.space.sample_encoded(config.eval_queries,
                                         np.random.default_rng([config.seed, 1]))
    fid = remote_fidelity(oracle, result.model, X_unif, X_test)
    if config.out is not None:
        save_model(Path(config.out), result.model, oracle.space,
                   {"attack": config.attack, "target": config.target, "stolen": True})
    recorded = {**asdict(config), "api_key": None if config.api_key is None else "***"}
    report = {
        "attack": config.attack, "target": config.target, "queries": result.queries,
        "replayed": result.replayed, "cost": result.cost, "seconds": result.seconds,
        "fidelity": fid, "budget": budget, "complete": result.complete,
        "eval_queries": evaluation.queries,
        "eval_cost": evaluation.cost if math.isfinite(evaluation.cost) else None,
        "info": result.info, "config": recorded,
    }
    return result, _jsonable(report)

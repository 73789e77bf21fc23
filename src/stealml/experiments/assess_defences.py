"""``stealml assess``, step 3: which defence stops each attack, at what cost to honest use.

Each attack that stole the model is replayed at the budget where it did best against
one defence of each kind, :data:`~stealml.experiments.defence_targets.QUICK_DEFENCES`
(or every one of ``DEFENCES`` with ``all_defences``): output policies, a query budget,
PRADA and out-of-distribution monitors that block. It uses the defence
matrix's own cell (:func:`~stealml.experiments.defence_matrix.run_cell`). A defence
*stops* an attack when the attack no longer reaches 99% fidelity (or cannot run). Its
utility cost is measured on the test split (or on uniform points when there is none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stealml.datasets import DATASETS
from stealml.datasets import load as load_dataset
from stealml.exceptions import ConfigurationError
from stealml.space import FeatureSpace

__all__ = ["STOPPED_BELOW", "evaluate_defences"]

STOPPED_BELOW = 0.99


def _owner_rows(space: FeatureSpace, meta: dict[str, Any], n_columns: int,
                seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The owner's reference rows (for the OOD monitor) and honest clients' rows: the
    model's training data when its file names a data set, else uniform points."""
    data = meta.get("data")
    if data in DATASETS:
        ds = load_dataset(str(data), random_state=int(meta.get("seed", seed)))
        if ds.X_train.shape[1] == n_columns:
            order = np.random.default_rng([seed, 7]).permutation(len(ds.X_train))
            half = len(order) // 2
            return ds.X_train[order[:half]], ds.X_train[order[half:]], f"{data} training rows"
    X = space.sample_encoded(4000, np.random.default_rng([seed, 3]))
    return X[:2000], X[2000:], "uniform points (the model file names no data set)"


def _params(attack: Any) -> dict[str, Any]:
    """The attack's description of the target, as the defence matrix's Case takes it."""
    keep = ("model_class", "hidden_units", "activation")
    return {k: getattr(attack, k) for k in keep
            if getattr(attack, k, None) is not None and attack.name == "equation-solving"}


def _relative_to_no_defence(rows: list[dict[str, Any]]) -> None:
    """An attack that stays below 99% with no defence at all is stopped by none: its
    ``stopped`` is None (nothing to stop at this budget)."""
    baseline = next((r for r in rows if r["defence"] == "none"), None)
    if baseline is None:
        return
    for name, cell in baseline["attacks"].items():
        if cell["fidelity"] is None or cell["fidelity"] < STOPPED_BELOW:
            for row in rows:
                row["attacks"][name]["stopped"] = None


def evaluate_defences(model: Any, space: FeatureSpace, attacks: list[dict[str, Any]],
                      config: Any, X_unif: np.ndarray, X_test: np.ndarray | None,
                      y_test: np.ndarray | None, meta: dict[str, Any]) -> dict[str, Any]:
    """Per defence: its utility cost, and each attack's fidelity against it."""
    from stealml.experiments.assess import _make_attack
    from stealml.experiments.defence_matrix import run_cell, utility_cost
    from stealml.experiments.defence_targets import DEFENCES, QUICK_DEFENCES, Case, Target
    from stealml.models.tree_service import serves_as_tree
    from stealml.oracles.local import LocalOracle

    seed = config.seed
    reference, honest, source = _owner_rows(space, meta, space.n_encoded, seed)
    X_eval = X_test if X_test is not None else X_unif
    target = Target("assessed", str(meta.get("data", "-")), model, space, X_eval, reference,
                    honest, tree=serves_as_tree(model))
    labels = y_test if y_test is not None else np.asarray(model.predict(X_eval))
    cases = []
    for entry in attacks:
        best = entry.get("best")
        if not best:
            continue
        attack = _make_attack(entry["attack"], config, model, frozenset({"probabilities"}),
                              seed)
        cases.append(Case(entry["attack"], "assessed", budget=int(best["budget"]),
                          params=_params(attack)))
    rows = []
    not_applicable: dict[str, str] = {}
    served = LocalOracle(target.served, space)  # what the model answers, undefended
    classes, has_proba = served.classes, "probabilities" in served.reveals
    for defence in DEFENCES if config.all_defences else QUICK_DEFENCES:
        try:  # noise and reverse sigmoid need probabilities the model may not give
            defence.api_policy(target.tree).check_model(
                None if classes is None else len(classes), has_proba)
        except ConfigurationError as exc:
            not_applicable[defence.name] = str(exc)
            continue
        if classes is None and defence.policy.get("output", "probabilities") != "probabilities":
            not_applicable[defence.name] = "a regressor answers values, not classes"
            continue
        cost = utility_cost(target, labels, defence)
        row: dict[str, Any] = {"defence": defence.name,
                               "accuracy_lost": cost["accuracy_lost"],
                               "tv_distortion": cost["tv_distortion"], "attacks": {}}
        if "value_change" in cost:
            row["value_change"] = cost["value_change"]
        for case in cases:
            cell = run_cell(target, case, defence, seed, n_uniform=min(len(X_unif), 2000))
            ok = cell.get("status") == "ok"
            fid = cell.get("fidelity") if ok else None
            row["attacks"][case.attack] = {
                "fidelity": fid, "queries": cell.get("queries"),
                "status": cell.get("status"), "message": cell.get("message"),
                "stopped": (not ok) or fid is None or fid < STOPPED_BELOW}
        rows.append(row)
    _relative_to_no_defence(rows)
    return {"rows": rows, "measured_on": "test split" if X_test is not None else
            "uniform points", "owner_rows": source, "stopped_below": STOPPED_BELOW,
            "not_applicable": not_applicable}

"""The targets, attacks and defences of the defence matrix (see :mod:`.defence_matrix`).

Each target is a model trained on a repository data set; its owner keeps half of the
training split as the reference data of the out-of-distribution monitor, and honest
traffic is drawn from the rows the owner never used (the test split, then the other half
of the training split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from stealml.attacks import ATTACKS, Attack
from stealml.attacks._discovery_map import DiscoveredExtraction
from stealml.datasets import load
from stealml.defences import Monitor, OutOfDistribution, Prada, calibrate_delta, calibrate_prada
from stealml.models.ensemble_service import EnsembleService
from stealml.models.tree_service import TreeService
from stealml.oracles.local import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace
from stealml.targets import make_target

__all__ = ["CASES", "DEFENCES", "NEURAL_CASES", "Case", "Defence", "Target", "build_target"]

PRADA_MIN_SAMPLES = 100  # the paper's test: one delta, from the 100th distance
PER_N_MIN_SAMPLES = 10  # the calibrated per-n test (calibrate_prada) starts here
PER_N_ORDERS = 50  # calibration orders of the owner's reference rows (and 20x as many short)


@dataclass
class Target:
    """A trained target, as its owner holds it."""

    name: str
    data: str
    model: Any
    space: FeatureSpace
    X_test: np.ndarray
    reference: np.ndarray  # the owner's rows for the out-of-distribution monitor
    honest: np.ndarray  # rows no party used: honest clients' queries
    tree: bool = False
    prada_delta: float | None = None  # None: calibrated on the reference rows when needed
    ensemble: bool = False  # served with each member tree's answer (EnsembleService)
    seed: int = 0
    _prada: Prada | None = field(default=None, repr=False)

    @property
    def served(self) -> Any:
        if self.ensemble:
            return EnsembleService(self.model, self.space, per_tree=True)
        return TreeService(self.model, self.space) if self.tree else self.model

    @property
    def classifier(self) -> bool:
        """Whether the target answers classes (not regression values); asks nothing."""
        return LocalOracle(self.served, self.space).classes is not None

    def calibrated_prada(self) -> Prada:
        """The per-n PRADA detector for this target, calibrated on the owner's reference
        rows (:func:`~stealml.defences.calibrate_prada`; one group of queries for a
        regressor)."""
        if self._prada is None:
            self._prada = calibrate_prada(self.reference, self.model.predict(self.reference)
                                          if self.classifier else None,
                                          PER_N_MIN_SAMPLES, PER_N_ORDERS,
                                          short_orders=20 * PER_N_ORDERS,
                                          random_state=self.seed)
        return self._prada

    def calibrated_delta(self) -> float:
        """PRADA's threshold for this target: calibrated on the owner's reference rows."""
        if self.prada_delta is None:
            self.prada_delta = calibrate_delta(self.reference, self.model.predict(
                self.reference), PRADA_MIN_SAMPLES)
        return self.prada_delta

    @property
    def n_classes(self) -> int:
        return len(self.model.classes_)


@dataclass(frozen=True)
class Case:
    """One attack on one target, with its fixed budget (alpha × the attack's unknowns,
    or a number of queries)."""

    attack: str
    target: str
    alpha: float | None = None
    budget: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    defences: tuple[str, ...] | None = None  # only these columns (slow attacks)

    @property
    def name(self) -> str:
        model = self.params.get("model_class", "")
        return f"{self.attack}{' (' + model + ')' if model else ''} on {self.target}"

    def make(self, seed: int, batch_size: int | None) -> Attack:
        cls = ATTACKS[self.attack]
        params = dict(self.params)
        if cls.requires == frozenset({"labels"}):
            params["ignore_probabilities"] = True  # the defence decides what is revealed
        return cls(random_state=seed, batch_size=batch_size, **params)  # type: ignore[call-arg]

    def budget_for(self, target: Target, attack: Attack) -> int | None:
        if self.alpha is None:
            return self.budget
        unknowns = attack.n_unknowns(target.space.n_encoded, target.n_classes)
        return max(1, math.ceil(self.alpha * unknowns))


@dataclass(frozen=True)
class Defence:
    """A column of the matrix: an API policy, a query budget, a detection monitor."""

    name: str
    policy: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    detector: str | None = None  # "prada" or "ood", with response block
    note: str = ""

    def api_policy(self, tree: bool) -> ApiPolicy:
        return ApiPolicy(incomplete="native" if tree else "reject", **self.policy)


def detector(name: str, target: Target, seed: int = 0) -> Prada | OutOfDistribution:
    if name == "prada":
        return target.calibrated_prada()
    return OutOfDistribution(target.reference, random_state=seed)


def monitor(names: tuple[str, ...], target: Target, response: str,
            seed: int = 0) -> Monitor:
    return Monitor([detector(n, target, seed) for n in names],
                   response=response)  # type: ignore[arg-type]


def _distinct(X: np.ndarray) -> np.ndarray:
    """The rows of ``X`` without repeats, in order (a repeated query is not paid again)."""
    _, first = np.unique(X, axis=0, return_index=True)
    return X[np.sort(first)]


def _split(ds: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Half of the training rows for the owner's reference; honest rows from the rest
    (the test split first), each without repeated rows."""
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(len(ds.X_train))
    half = len(order) // 2
    test = ds.X_test[rng.permutation(len(ds.X_test))]
    return (_distinct(ds.X_train[order[:half]]),
            _distinct(np.vstack([test, ds.X_train[order[half:]]])))


def _binned_circles(ds: Any, seed: int) -> Any:
    """Circles behind 10 quantile bins per feature (Amazon's default extraction)."""
    edges = [np.unique(np.quantile(ds.X_train[:, j], np.arange(1, 10) / 10)).tolist()
             for j in range(2)]
    return Pipeline([("extraction", DiscoveredExtraction(["bins", "bins"], [1, 1], edges)),
                     ("model", LogisticRegression(max_iter=5000))]).fit(ds.X_train, ds.y_train)


# name -> (data set, model kind, max leaves)
TARGET_SPECS: dict[str, tuple[str, str, int | None]] = {
    "breast-cancer LR": ("breast-cancer", "logreg", None),
    "digits softmax": ("digits", "softmax", None),
    "contraceptive OvR": ("contraceptive", "ovr", None),
    "diabetes MLP": ("diabetes", "mlp", None),
    "german-credit tree": ("german-credit", "tree", 26),
    "circles binned LR": ("circles", "binned", None),
    "digits ReLU MLP": ("digits", "relu", None),  # 64-32-10, as benchmarks/relu_extraction
    "german-credit forest": ("german-credit", "forest", 8),  # 10 trees, each tree answering
}


def build_target(name: str, seed: int = 0) -> Target:
    """Train the target ``name`` (see ``TARGET_SPECS``) on its data set's training split."""
    data, kind, leaves = TARGET_SPECS[name]
    ds = load(data, random_state=seed)
    if kind == "binned":
        model = _binned_circles(ds, seed)
    elif kind == "relu":
        model = MLPClassifier((32,), max_iter=1000, random_state=seed).fit(ds.X_train,
                                                                            ds.y_train)
    elif kind == "tree":
        model = DecisionTreeClassifier(max_leaf_nodes=leaves, random_state=seed).fit(
            ds.X_train, ds.y_train)
    elif kind == "forest":
        model = RandomForestClassifier(n_estimators=10, max_leaf_nodes=leaves,
                                       random_state=seed).fit(ds.X_train, ds.y_train)
    else:
        model = make_target(kind, "classification", len(np.unique(ds.y)), seed).fit(
            ds.X_train, ds.y_train)
    reference, honest = _split(ds, seed)
    delta = calibrate_delta(reference, model.predict(reference), PRADA_MIN_SAMPLES,
                            random_state=seed)
    return Target(name, data, model, ds.space, ds.X_test, reference, honest,
                  tree=kind in ("tree", "forest"), prada_delta=delta,
                  ensemble=kind == "forest", seed=seed)


# every attack of the registry, each on a target it applies to, at a fixed budget
CASES: list[Case] = [
    Case("equation-solving", "breast-cancer LR", alpha=1,
         params={"model_class": "logreg"}),
    Case("equation-solving", "digits softmax", alpha=1, params={"model_class": "softmax"}),
    Case("equation-solving", "contraceptive OvR", alpha=1, params={"model_class": "ovr"}),
    Case("feature-discovery", "circles binned LR", budget=500),
    Case("lowd-meek", "breast-cancer LR", budget=1000),
    Case("retrain-uniform", "breast-cancer LR", alpha=50),
    Case("retrain-line-search", "breast-cancer LR", alpha=50),
    Case("retrain-adaptive", "breast-cancer LR", alpha=50),
    Case("retrain-adaptive", "digits softmax", alpha=2),
    Case("path-finding", "german-credit tree", budget=3000),
    Case("top-down", "german-credit tree", budget=1000),
    Case("ensemble-paths", "german-credit forest", budget=3000, params={"epsilon": 1e-4}),
    Case("equation-solving", "diabetes MLP", alpha=1,  # last: its solver is the slowest
         params={"model_class": "mlp", "hidden_units": 20, "activation": "tanh"}),
]
# the attacks on neural networks (the PRADA study runs them; the matrix does not)
NEURAL_CASES: list[Case] = [
    Case("functionally-equivalent", "digits ReLU MLP", budget=150_000),
    Case("substitute-jacobian", "digits ReLU MLP", budget=2000, params={"n_queries": 2000}),
    Case("substitute-knockoff", "digits ReLU MLP", budget=2000, params={"n_queries": 2000}),
]
QUICK_CASES = [c for c in CASES if c.target in (
    "breast-cancer LR", "german-credit tree", "circles binned LR")]

DEFENCES: list[Defence] = [
    Defence("none"),
    Defence("round 4", {"rounding": 4}),
    Defence("round 3", {"rounding": 3}),
    Defence("round 2", {"rounding": 2}),
    Defence("labels only", {"output": "labels"}),
    Defence("top-1", {"output": "top-k", "top_k": 1}),
    Defence("noise 0.01", {"noise": 0.01}),
    Defence("noise 0.05", {"noise": 0.05}),
    Defence("noise 0.1", {"noise": 0.1}),
    Defence("reverse sigmoid", {"reverse_sigmoid": (1.0, 0.1)}),
    Defence("budget 100", budget=100),
    Defence("PRADA+block", detector="prada"),
    Defence("OOD+block", detector="ood"),
]
QUICK_DEFENCES = [d for d in DEFENCES if d.name in (
    "none", "round 2", "labels only", "top-1", "noise 0.05", "reverse sigmoid",
    "budget 100", "PRADA+block", "OOD+block")]

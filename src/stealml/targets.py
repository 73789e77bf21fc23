"""The kinds of target model ``stealml train`` makes, as the paper's services trained them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from stealml.exceptions import ConfigurationError
from stealml.models.dp_logreg import DPLogisticRegression, check_epsilon
from stealml.models.kernel_logreg import KernelLogisticRegression

__all__ = ["MODEL_KINDS", "PRIVATE_KINDS", "REGRESSION_KINDS", "make_target"]

DEFAULT_EPSILON = 1.0
Factory = Callable[[int, int | None, int | None], Any]

MODEL_KINDS: dict[str, Factory] = {
    "logreg": lambda seed, leaves, depth: LogisticRegression(max_iter=5000),
    "softmax": lambda seed, leaves, depth: LogisticRegression(max_iter=5000),
    "ovr": lambda seed, leaves, depth: OneVsRestClassifier(LogisticRegression(max_iter=5000)),
    "mlp": lambda seed, leaves, depth: MLPClassifier(
        hidden_layer_sizes=(20,), activation="tanh", max_iter=2000, random_state=seed),
    "relu-mlp": lambda seed, leaves, depth: MLPClassifier(
        hidden_layer_sizes=(20,), activation="relu", max_iter=2000, random_state=seed),
    "tree": lambda seed, leaves, depth: DecisionTreeClassifier(
        max_leaf_nodes=leaves, max_depth=depth, random_state=seed),
    "regression-tree": lambda seed, leaves, depth: DecisionTreeRegressor(
        max_leaf_nodes=leaves, max_depth=depth, random_state=seed),
    "linear-svm": lambda seed, leaves, depth: SVC(kernel="linear"),
    "poly-svm": lambda seed, leaves, depth: SVC(kernel="poly", degree=2, coef0=1.0),
    "rbf-svm": lambda seed, leaves, depth: SVC(kernel="rbf", gamma="scale"),
    "random-forest": lambda seed, leaves, depth: RandomForestClassifier(
        n_estimators=50, max_leaf_nodes=leaves, max_depth=depth, random_state=seed),
    "gradient-boosting": lambda seed, leaves, depth: GradientBoostingClassifier(
        n_estimators=50, max_leaf_nodes=leaves or 8, max_depth=depth, random_state=seed),
    "kernel-logreg": lambda seed, leaves, depth: KernelLogisticRegression(
        gamma=1.0, n_representers=20, random_state=seed),
    "dp-logreg": lambda seed, leaves, depth: DPLogisticRegression(
        epsilon=DEFAULT_EPSILON, random_state=seed),
}
REGRESSION_KINDS = frozenset({"regression-tree"})
PRIVATE_KINDS = frozenset({"dp-logreg"})  # kinds trained with a privacy budget epsilon


def make_target(kind: str, task: str, n_classes: int | None, seed: int = 0,
                max_leaves: int | None = None, max_depth: int | None = None,
                epsilon: float | None = None) -> Any:
    """An unfitted estimator of ``kind`` for a data set with this task and class count.

    ``epsilon`` is the privacy budget of a differentially private kind (``dp-logreg``;
    default 1.0) and is refused for the others.
    """
    if kind not in MODEL_KINDS:
        raise ConfigurationError(
            f"unknown model kind {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    if (kind in REGRESSION_KINDS) != (task == "regression"):
        need = "a regression" if kind in REGRESSION_KINDS else "a classification"
        raise ConfigurationError(f"model kind {kind!r} needs {need} data set")
    if kind in ("logreg", "dp-logreg") and n_classes is not None and n_classes > 2:
        raise ConfigurationError(f"{kind} is binary, but the data set has {n_classes} "
                                 "classes; use softmax or ovr")
    if epsilon is not None and kind not in PRIVATE_KINDS:
        raise ConfigurationError(f"epsilon is the privacy budget of "
                                 f"{', '.join(sorted(PRIVATE_KINDS))} targets, not of {kind!r}")
    model = MODEL_KINDS[kind](seed, max_leaves, max_depth)
    if epsilon is not None:
        model.set_params(epsilon=check_epsilon(epsilon))
    return model

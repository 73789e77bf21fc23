"""Extract-and-test: choose the local model class and its hyper-parameters from the
answers already bought, by agreement on a held-out part of them (no new queries).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, sections 5 (extract-and-test) and 6.4 (the RBF kernel's gamma).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from stealml.exceptions import ConfigurationError

__all__ = ["FAMILIES", "candidates", "fit", "select_model"]

FAMILIES = ("linear", "poly-svm", "rbf-svm", "mlp", "forest")
AUTO = ("linear", "poly-svm", "rbf-svm")
SELECT_ROWS = 3000  # most answers the candidates are fit on while selecting


def candidates(family: str, X: np.ndarray, hidden_units: int = 20,
               seed: int = 0) -> list[Any]:
    """The unfitted estimators of one model family, simplest first.

    Labels of a deterministic target are noiseless, so the grids favour weak
    regularisation; the RBF widths scale with the data like scikit-learn's "scale".
    "forest" (for tree-ensemble targets, whose boundaries are axis-aligned) is one deep
    tree and a random forest of 100.
    """
    if family == "linear":
        return [LogisticRegression(C=c, max_iter=1000) for c in (1e3, 1.0)]
    if family == "poly-svm":
        return [SVC(kernel="poly", degree=2, coef0=1.0, C=c) for c in (1e3, 10.0)]
    if family == "rbf-svm":
        scale = 1.0 / (X.shape[1] * max(float(X.var()), 1e-12))
        return [SVC(kernel="rbf", gamma=g * scale, C=c)
                for g in (1.0, 4.0, 0.25, 16.0) for c in (1e3, 10.0)]
    if family == "mlp":
        return [MLPClassifier(hidden_layer_sizes=(h,), activation="tanh", alpha=1e-5,
                              max_iter=500, random_state=seed)
                for h in (hidden_units, 2 * hidden_units)]
    if family == "forest":
        return [DecisionTreeClassifier(random_state=seed),
                RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)]
    raise ConfigurationError(f"model must be auto or one of {', '.join(FAMILIES)}, "
                             f"not {family!r}")


def fit(estimator: Any, X: np.ndarray, y: np.ndarray, warm: bool = False) -> Any:
    """A fitted copy of ``estimator``; a constant model when ``y`` has one class.

    With ``warm``, a fitted logistic regression or MLP starts from its own weights when
    the classes are the same (each adaptive round changes the data a little).
    """
    if len(np.unique(y.astype(str))) < 2:
        return DummyClassifier(strategy="constant", constant=y[0]).fit(X, y)
    model = clone(estimator)
    classes = getattr(estimator, "classes_", None)
    if warm and isinstance(estimator, (LogisticRegression, MLPClassifier)) and \
            classes is not None and np.array_equal(classes, np.unique(y)):
        model.set_params(warm_start=True)
        for key in ("coef_", "intercept_", "coefs_", "intercepts_", "classes_",
                    "n_features_in_", "n_outputs_", "n_layers_", "out_activation_",
                    "_label_binarizer", "_best_coefs", "_best_intercepts", "loss_curve_",
                    "best_loss_", "_no_improvement_count", "t_", "n_iter_"):
            if hasattr(estimator, key):
                setattr(model, key, getattr(estimator, key))
        model.fit(X, y)
        model.set_params(warm_start=False)
        return model
    return model.fit(X, y)


def select_model(X: np.ndarray, y: np.ndarray, families: tuple[str, ...],
                 rng: np.random.Generator, hidden_units: int = 20,
                 holdout: float = 0.25) -> tuple[Any, dict[str, Any]]:
    """Pick the candidate that best agrees with held-out answers; refit it on all.

    Returns the fitted model and a report (the winner and every candidate's score).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (200, 2)); y = (X[:, 0] ** 2 + X[:, 1] ** 2 < 0.5)
    >>> model, report = select_model(X, y, ("linear", "rbf-svm"), rng)
    >>> report["family"]
    'rbf-svm'
    """
    order = rng.permutation(len(X))[:SELECT_ROWS]
    n_test = max(1, int(len(order) * holdout))
    test, train = order[:n_test], order[n_test:]
    seed = int(rng.integers(2**31 - 1))
    best: tuple[float, str, Any] | None = None
    scores: dict[str, float] = {}
    for family in families:
        for est in candidates(family, X, hidden_units, seed):
            model = fit(est, X[train], y[train])
            score = float(np.mean(model.predict(X[test]).astype(str) == y[test].astype(str)))
            scores[_describe(family, est)] = score
            if best is None or score > best[0]:
                best = (score, family, est)
    assert best is not None
    report = {"family": best[1], "chosen": _describe(best[1], best[2]),
              "holdout_agreement": best[0], "candidates": scores}
    return fit(best[2], X, y), report


def _describe(family: str, est: Any) -> str:
    keys = ("C", "gamma", "hidden_layer_sizes")
    params = est.get_params()
    shown = ", ".join(f"{k}={params[k]:.3g}" if isinstance(params[k], float)
                      else f"{k}={params[k]}" for k in keys if k in params)
    return f"{family}({shown})"

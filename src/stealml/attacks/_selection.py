"""Extract-and-test: choose the local model class and its hyper-parameters from the
answers already bought, by agreement on a held-out part of them (no new queries).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, sections 5 (extract-and-test) and 6.4 (the RBF kernel's gamma).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from stealml.exceptions import ConfigurationError

__all__ = ["FAMILIES", "candidates", "fit", "select_model"]

FAMILIES = ("linear", "poly-svm", "rbf-svm", "mlp", "forest")
AUTO = ("linear", "poly-svm", "rbf-svm")
RBF_WIDTHS = (1.0, 4.0, 0.25, 16.0, 1 / 16)  # gamma, in units of scikit-learn's "scale"
RBF_C = (1e5, 1e2)  # labels are noiseless: (almost) hard margins
# a hard margin between answers a hair apart on both sides of a boundary can take libsvm
# minutes to reach; its iterate after this many steps is scored like any other candidate
SVC_MAX_ITER = 200_000
SELECT_ROWS = 3000  # most answers the candidates are fit on while selecting
FOLDS_BELOW = 400  # with fewer answers, every answer is held out once (k-fold), not a quarter
FOLDS = 5


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
        return [SVC(kernel="poly", degree=2, coef0=1.0, C=c, max_iter=SVC_MAX_ITER)
                for c in (1e3, 10.0)]
    if family == "rbf-svm":
        scale = 1.0 / (X.shape[1] * max(float(X.var()), 1e-12))
        return [SVC(kernel="rbf", gamma=g * scale, C=c, max_iter=SVC_MAX_ITER)
                for g in RBF_WIDTHS for c in RBF_C]
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
        # as an array: scikit-learn refuses a numpy bool (or float) scalar constant
        return DummyClassifier(strategy="constant", constant=np.asarray([y[0]])).fit(X, y)
    model = clone(estimator)
    if isinstance(model, SVC):
        with warnings.catch_warnings():  # an SVC stopped at max_iter is still a model
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)
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
                 holdout: float = 0.25, widest: bool = False) -> tuple[Any, dict[str, Any]]:
    """Pick the candidate that best agrees with held-out answers; refit it on all.

    The score is the balanced agreement (the mean over classes of the share of held-out
    answers of that class predicted right), so a rare class the answers found counts as
    much as a common one. With fewer than 400 answers every answer is held out once
    (5-fold); otherwise a random ``holdout`` share of at most 3000 answers is. Ties go
    to the earlier (simpler) candidate. With ``widest``, a winning RBF SVM gives way to
    the widest RBF candidate scoring within one standard error of it (the smoothest
    boundary the answers do not tell apart from the best; for budgets too small to
    pin down a wiggly one). Returns the fitted model and a report (the winner and
    every candidate's score).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (200, 2)); y = (X[:, 0] ** 2 + X[:, 1] ** 2 < 0.5)
    >>> model, report = select_model(X, y, ("linear", "rbf-svm"), rng)
    >>> report["family"]
    'rbf-svm'
    """
    if len(X) < 2:  # one answer: nothing to hold out; the first candidate, fitted on it
        est = candidates(families[0], X, hidden_units, int(rng.integers(2**31 - 1)))[0]
        return fit(est, X, y), {"family": families[0], "chosen": _describe(families[0], est),
                                "holdout_agreement": None, "candidates": {}}
    order = rng.permutation(len(X))[:SELECT_ROWS]
    if len(order) < FOLDS_BELOW:
        k = min(FOLDS, len(order))
        splits = [(order[i::k], np.setdiff1d(order, order[i::k])) for i in range(k)]
    else:
        n_test = max(1, int(len(order) * holdout))
        splits = [(order[:n_test], order[n_test:])]
    text = y.astype(str)
    seed = int(rng.integers(2**31 - 1))
    best: tuple[float, str, Any] | None = None
    scores: dict[str, float] = {}
    scored: list[tuple[float, str, Any]] = []
    for family in families:
        for est in candidates(family, X, hidden_units, seed):
            right = np.zeros(len(X), dtype=bool)
            tested = np.zeros(len(X), dtype=bool)
            for test, train in splits:
                model = fit(est, X[train], y[train])
                right[test] = model.predict(X[test]).astype(str) == text[test]
                tested[test] = True
            score = _balanced(right[tested], text[tested])
            scores[_describe(family, est)] = score
            scored.append((score, family, est))
            n_tested = int(tested.sum())
            if best is None or score > best[0]:
                best = (score, family, est)
    assert best is not None
    if widest and best[1] == "rbf-svm":
        best = _widest(best, scored, n_tested)
    report = {"family": best[1], "chosen": _describe(best[1], best[2]),
              "holdout_agreement": best[0], "candidates": scores}
    return fit(best[2], X, y), report


def _widest(best: tuple[float, str, Any], scored: list[tuple[float, str, Any]],
             n_tested: int) -> tuple[float, str, Any]:
    """The RBF candidate of smallest gamma whose score is within one standard error
    (of a share measured on ``n_tested`` answers) of the best score."""
    p = best[0]
    floor = p - float(np.sqrt(p * (1 - p) / max(n_tested, 1)))
    near = [c for c in scored if c[1] == "rbf-svm" and c[0] >= floor]
    return min(near, key=lambda c: (float(c[2].get_params()["gamma"]), -c[0]))


def _balanced(right: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present of the share of their rows predicted right."""
    return float(np.mean([right[labels == c].mean() for c in np.unique(labels)]))


def _describe(family: str, est: Any) -> str:
    keys = ("C", "gamma", "hidden_layer_sizes")
    params = est.get_params()
    shown = ", ".join(f"{k}={params[k]:.3g}" if isinstance(params[k], float)
                      else f"{k}={params[k]}" for k in keys if k in params)
    return f"{family}({shown})"

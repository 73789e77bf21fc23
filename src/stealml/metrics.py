"""Fidelity of an extracted model to its target.

R_test and R_unif are the share of test points, and of points drawn uniformly from the
feature space, on which the two models predict different labels; R_TV is the mean total
variation distance between their probability vectors. Extraction accuracy is 1 - R.
For regressors: mean absolute error and mean relative error.

References: Tramèr et al., USENIX Security 2016, section 4 (metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stealml.random import RandomState
from stealml.space import FeatureSpace

__all__ = ["R_UNIF_POINTS", "disagreement", "fidelity", "regression_errors", "tv_distance",
           "value_errors"]

R_UNIF_POINTS = 10_000


def disagreement(target: Any, stolen: Any, X: np.ndarray) -> float:
    """Share of rows of ``X`` where the two models predict different labels (R)."""
    a = np.asarray(target.predict(X))
    b = np.asarray(stolen.predict(X))
    return float(np.mean(a.astype(str) != b.astype(str)))


def _aligned_proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    p = np.asarray(model.predict_proba(X), dtype=float)
    own = np.asarray(model.classes_).astype(str)
    out = np.zeros((len(X), len(classes)))
    index = {c: i for i, c in enumerate(own)}
    for j, c in enumerate(classes.astype(str)):
        if c in index:
            out[:, j] = p[:, index[c]]
    return out


def tv_distance(target: Any, stolen: Any, X: np.ndarray) -> float | None:
    """Mean total variation distance of the class probabilities (R_TV); None if either
    model gives no probabilities."""
    if not (hasattr(target, "predict_proba") and hasattr(stolen, "predict_proba")):
        return None
    classes = np.asarray(target.classes_)
    pa = _aligned_proba(target, X, classes)
    pb = _aligned_proba(stolen, X, classes)
    return float(np.mean(0.5 * np.abs(pa - pb).sum(axis=1)))


def regression_errors(target: Any, stolen: Any, X: np.ndarray) -> dict[str, float]:
    """Mean absolute error and mean relative error |f - f^| / |f| of two regressors."""
    return value_errors(target.predict(X), stolen.predict(X))


def value_errors(truth: Any, predicted: Any) -> dict[str, float]:
    """Mean absolute error and mean relative error |f - f^| / |f| of predicted values."""
    a = np.asarray(truth, dtype=float)
    b = np.asarray(predicted, dtype=float)
    err = np.abs(a - b)
    rel = err / np.maximum(np.abs(a), np.finfo(float).tiny)
    return {"mae": float(err.mean()), "mre": float(rel.mean())}


def fidelity(target: Any, stolen: Any, space: FeatureSpace, X_test: np.ndarray | None = None,
             n_uniform: int = R_UNIF_POINTS, random_state: RandomState = 0,
             regression: bool = False) -> dict[str, float | None]:
    """All fidelity measures at once.

    Classifiers: ``r_test``, ``r_unif``, ``tv_test``, ``tv_unif`` (None where not
    measured: no test set, or no probabilities). Regressors: ``mae_*`` and ``mre_*``.
    Uniform points are ``n_uniform`` raw rows drawn from ``space`` (seeded), encoded.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> space = FeatureSpace.continuous(2)
    >>> m = LogisticRegression().fit([[0, 0], [1, 1]], [0, 1])
    >>> fidelity(m, m, space)["r_unif"]
    0.0
    """
    X_unif = space.sample_encoded(n_uniform, random_state)
    if regression:
        out: dict[str, float | None] = {}
        for tag, X in (("test", X_test), ("unif", X_unif)):
            errs = regression_errors(target, stolen, X) if X is not None else None
            out[f"mae_{tag}"] = None if errs is None else errs["mae"]
            out[f"mre_{tag}"] = None if errs is None else errs["mre"]
        return out
    return {
        "r_test": None if X_test is None else disagreement(target, stolen, X_test),
        "r_unif": disagreement(target, stolen, X_unif),
        "tv_test": None if X_test is None else tv_distance(target, stolen, X_test),
        "tv_unif": tv_distance(target, stolen, X_unif),
    }

"""Kernel logistic regression with training points as representers (paper section 4.1.3).

f(x) = softmax(sum_i alpha_i K(x, x_i) + b) over representers x_i drawn from the training
set, K the RBF kernel. scikit-learn has no such estimator; this one is small and plain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.utils.validation import check_is_fitted

from stealml.random import as_generator

__all__ = ["KernelLogisticRegression"]


class KernelLogisticRegression(ClassifierMixin, BaseEstimator):
    """RBF-kernel logistic regression on ``n_representers`` training points.

    Parameters
    ----------
    gamma : float
        RBF kernel width: K(x, z) = exp(-gamma ||x - z||^2).
    n_representers : int
        Training points kept as representers (all of them if fewer).
    C : float
        Inverse L2 regularisation of the weights.
    random_state : int, optional
        Seed for choosing the representers.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, random_state=0)
    >>> model = KernelLogisticRegression(gamma=1.0, n_representers=20, random_state=0)
    >>> model.fit(X, y).score(X, y) > 0.8
    True
    """

    def __init__(self, gamma: float = 1.0, n_representers: int = 20, C: float = 1.0,
                 random_state: int | None = None) -> None:
        self.gamma = gamma
        self.n_representers = n_representers
        self.C = C
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> KernelLogisticRegression:
        X = np.asarray(X, dtype=float)
        rng = as_generator(self.random_state)
        n = min(self.n_representers, len(X))
        self.representers_ = X[np.sort(rng.choice(len(X), size=n, replace=False))]
        self.linear_ = LogisticRegression(C=self.C, max_iter=2000)
        self.linear_.fit(self._features(X), y)
        self.classes_ = self.linear_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def _features(self, X: Any) -> np.ndarray:
        return rbf_kernel(np.asarray(X, dtype=float), self.representers_, gamma=self.gamma)

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "linear_")
        return np.asarray(self.linear_.decision_function(self._features(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "linear_")
        return np.asarray(self.linear_.predict_proba(self._features(X)))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "linear_")
        return np.asarray(self.linear_.predict(self._features(X)))

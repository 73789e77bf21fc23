"""Binary logistic regression trained with differential privacy (Chaudhuri et al. 2011).

Two mechanisms for L2-regularised logistic regression, both epsilon-differentially private
with respect to one training row, for rows of norm at most 1:

* ``"objective"`` (objective perturbation, their Algorithm 2): minimise the regularised
  loss plus a random linear term b.w / n, ||b|| ~ Gamma(d, 2 / epsilon'), with extra
  regularisation Delta when epsilon is too small for the data size;
* ``"output"`` (output perturbation, their Algorithm 1): train normally, then add noise
  b with ||b|| ~ Gamma(d, 2 / (n Lambda epsilon)) to the weights.

Each row x becomes z = [x, 1] / data_norm, clipped to norm 1; the intercept is one more
weight, regularised like the others (the privacy proofs need it). The fitted model is a
scikit-learn ``LogisticRegression`` (this class derives from it): predictions,
probabilities and model files are the usual ones. diffprivlib 0.6.6 implements the same
objective perturbation, but it does not import with scikit-learn >= 1.7 (it needs
``sklearn.tree._tree.DOUBLE``), hence this small implementation.

References: Chaudhuri, Monteleoni, Sarwate, "Differentially Private Empirical Risk
Minimization", JMLR 12, 2011, Algorithms 1 and 2 (logistic loss, c = 1/4); Tramèr et
al., USENIX Security 2016, section 7 ("Differential privacy").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.linear_model import LogisticRegression

from stealml.exceptions import ConfigurationError, InvalidInputError
from stealml.random import as_generator

__all__ = ["MECHANISMS", "DPLogisticRegression", "check_epsilon"]

MECHANISMS = ("objective", "output")
LOGISTIC_CURVATURE = 0.25  # c: the logistic loss's second derivative is at most 1/4


def check_epsilon(epsilon: Any) -> float:
    """A privacy budget epsilon > 0 (finite), or a ConfigurationError."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ConfigurationError(f"epsilon must be a number > 0, not {epsilon!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ConfigurationError(f"epsilon must be a finite number > 0, not {epsilon!r}")
    return value


def _noise(d: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A vector with density proportional to exp(-||b|| / scale): uniform direction,
    norm ~ Gamma(d, scale)."""
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    return direction * rng.gamma(d, scale)


def _objective(w: np.ndarray, Z: np.ndarray, s: np.ndarray, lam: float,
               b: np.ndarray) -> tuple[float, np.ndarray]:
    n = len(Z)
    m = s * (Z @ w)
    loss = -float(np.sum(log_expit(m))) / n + float(b @ w) / n + 0.5 * lam * float(w @ w)
    grad = -(Z.T @ (s * expit(-m))) / n + b / n + lam * w
    return loss, grad


class DPLogisticRegression(LogisticRegression):
    """Binary logistic regression with epsilon-differential privacy for its training rows.

    Parameters
    ----------
    epsilon : float
        The privacy budget (> 0); smaller is more private and noisier.
    C : float
        Inverse regularisation, as in scikit-learn: Lambda = 1 / (C n).
    data_norm : float, optional
        A bound on the norm of [x, 1]; rows are divided by it and clipped to norm 1.
        Default sqrt(n_features + 1), which bounds every row with features in [-1, 1]
        (the paper's scaling, and stealml's data sets), so nothing is read from the data.
    mechanism : {"objective", "output"}
        Objective perturbation (Algorithm 2) or output perturbation (Algorithm 1).
    max_iter : int
        Most L-BFGS iterations.
    random_state : int or Generator, optional
        Seed of the privacy noise.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (500, 3)); y = (X[:, 0] > 0).astype(int)
    >>> model = DPLogisticRegression(epsilon=1.0, random_state=0).fit(X, y)
    >>> model.coef_.shape, isinstance(model, LogisticRegression)
    ((1, 3), True)
    """

    # the parent's settings that describe the fitted model (read by its tags and checks);
    # class attributes, not parameters: this estimator's fit has none of these choices
    solver = "lbfgs"
    fit_intercept = True
    penalty = "l2"
    l1_ratio = 0.0
    class_weight = None
    warm_start = False

    def __init__(self, epsilon: float = 1.0, C: float = 1.0, data_norm: float | None = None,
                 mechanism: str = "objective", max_iter: int = 1000,
                 random_state: Any = None) -> None:
        self.epsilon = epsilon
        self.C = C
        self.data_norm = data_norm
        self.mechanism = mechanism
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params(self, n_features: int) -> float:
        check_epsilon(self.epsilon)
        if self.mechanism not in MECHANISMS:
            raise ConfigurationError(f"mechanism must be one of {', '.join(MECHANISMS)}, "
                                     f"not {self.mechanism!r}")
        if not float(self.C) > 0:
            raise ConfigurationError(f"C must be > 0, not {self.C!r}")
        norm = np.sqrt(n_features + 1.0) if self.data_norm is None else float(self.data_norm)
        if not norm > 0:
            raise ConfigurationError(f"data_norm must be > 0, not {self.data_norm!r}")
        return float(norm)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DPLogisticRegression:
        """Train privately on ``X`` (n, d) and binary labels ``y``."""
        if sample_weight is not None:
            raise InvalidInputError("DPLogisticRegression takes no sample weights (they "
                                    "would change each row's privacy)")
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise InvalidInputError(f"X must be 2-D with one row per label, not {X.shape} "
                                    f"for {len(y)} labels")
        classes = np.unique(y)
        if len(classes) != 2:
            raise InvalidInputError(f"DPLogisticRegression is binary, but y has "
                                    f"{len(classes)} classes")
        norm = self._check_params(X.shape[1])
        eps = float(self.epsilon)
        rng = as_generator(self.random_state)
        n, d = len(X), X.shape[1] + 1
        Z = np.hstack([X, np.ones((n, 1))]) / norm
        Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1.0)
        s = np.where(y == classes[1], 1.0, -1.0)
        lam = 1.0 / (float(self.C) * n)
        c = LOGISTIC_CURVATURE
        b = np.zeros(d)
        extra = 0.0
        if self.mechanism == "objective":
            eps_p = eps - np.log(1 + 2 * c / (n * lam) + c * c / (n * n * lam * lam))
            if eps_p <= 0:
                extra = c / (n * (np.expm1(eps / 4))) - lam
                eps_p = eps / 2
            b = _noise(d, 2.0 / eps_p, rng)
        res = minimize(_objective, np.zeros(d), args=(Z, s, lam + extra, b), jac=True,
                       method="L-BFGS-B", options={"maxiter": int(self.max_iter)})
        w = np.asarray(res.x)
        if self.mechanism == "output":
            w = w + _noise(d, 2.0 / (n * lam * eps), rng)
        self.coef_ = (w[:-1] / norm)[None, :]
        self.intercept_ = np.array([w[-1] / norm])
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_iter_ = np.array([int(res.nit)], dtype=np.int32)
        self.noise_norm_ = float(np.linalg.norm(b)) if self.mechanism == "objective" else \
            float(np.linalg.norm(w - res.x))
        return self

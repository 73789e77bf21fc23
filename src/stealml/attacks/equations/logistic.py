"""Logistic and softmax regression from probabilities: a linear solve, or a fit.

A softmax model p = softmax(W x + b) is determined only up to a shift shared by all
classes, but the c - 1 log-ratios log(p_j / p_r) of each answer are linear in the
parameters: d + 1 answers at independent points fix every (w_j - w_r, b_j - b_r)
exactly. Binary logistic regression is the case c = 2. When answers are rounded, or too
few, the paper's regularised cross-entropy fit over the queried points takes over; with
rounded answers its solution is then moved to the nearest model that agrees with every
answer to its rounding (:func:`fit_intervals`), and then to the analytic centre of the
set of such models (:func:`center_intervals`): every model consistent with the rounded
answers is equally likely under them, and the centre is the one farthest from
contradicting any answer, where the nearest consistent model sits on the set's edge.

References: Tramèr et al., USENIX Security 2016, sections 4.1.1 and 4.1.2 (and Figure 7
for rounded answers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

__all__ = [
    "center_intervals",
    "fit_cross_entropy",
    "fit_intervals",
    "make_logistic_regression",
    "solve_log_ratios",
    "to_logistic_regression",
]


def make_logistic_regression(coef: Any, intercept: Any, classes: Any) -> LogisticRegression:
    """A fitted ``LogisticRegression`` with the given parameters."""
    model = LogisticRegression()
    model.coef_ = np.atleast_2d(np.asarray(coef, dtype=float))
    model.intercept_ = np.atleast_1d(np.asarray(intercept, dtype=float))
    model.classes_ = np.asarray(classes)
    model.n_features_in_ = model.coef_.shape[1]
    model.n_iter_ = np.zeros(1, dtype=np.int32)
    return model


def to_logistic_regression(theta: np.ndarray, classes: np.ndarray) -> LogisticRegression:
    """Softmax parameters ``theta`` (c, d + 1; last column the bias) as scikit-learn's model.

    Two classes become sklearn's binary form: one row, w_1 - w_0.
    """
    theta = theta - theta[:1]  # the shared shift is free: pin class 0 at zero
    if len(classes) == 2:
        return make_logistic_regression(theta[1:, :-1], theta[1:, -1], classes)
    return make_logistic_regression(theta[:, :-1], theta[:, -1], classes)


def _design(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


def solve_log_ratios(X: np.ndarray, P: np.ndarray, free: np.ndarray,
                     min_probability: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Exact softmax parameters from the log-ratios of the usable answers.

    Every class j is solved against one reference class r (the one whose probability is
    most often usable) on the rows where both p_j and p_r are above ``min_probability``;
    columns outside ``free`` (constant in the space) get weight 0.

    Returns ``theta`` (c, d + 1) and facts: the smallest rank over classes and whether
    every class's system had full rank.
    """
    c = P.shape[1]
    ok = P >= min_probability
    ref = int(np.argmax(ok.sum(axis=0) + P.mean(axis=0) * 1e-3))
    theta = np.zeros((c, X.shape[1] + 1))
    cols = np.r_[np.flatnonzero(free), X.shape[1]]
    A_all = _design(X)[:, cols]
    with np.errstate(divide="ignore"):
        L = np.log(P)
    ranks = []
    groups: dict[bytes, list[int]] = {}
    for j in range(c):
        if j != ref:
            rows = ok[:, j] & ok[:, ref]
            groups.setdefault(rows.tobytes(), []).append(j)
    for key, classes in groups.items():
        rows = np.frombuffer(key, dtype=bool)
        A = A_all[rows]
        rhs = L[rows][:, classes] - L[rows][:, [ref]]
        rank = 0
        if len(A):
            # QR with column pivoting: exact for a full-rank system, and it reports the
            # rank, at a fraction of an SVD's cost on wide spaces (faces: 10,305 unknowns)
            sol, _, rank, _ = scipy.linalg.lstsq(A, rhs, lapack_driver="gelsy",
                                                  check_finite=False)
            for k, j in enumerate(classes):
                theta[j, cols] = sol[:, k]
        ranks.extend([rank] * len(classes))
    need = len(cols)
    min_rank = min(ranks) if ranks else 0
    return theta, {"unknowns": int(need * (c - 1)), "min_rank": int(min_rank),
                   "exact": bool(min_rank == need)}


def _ce_loss(flat: np.ndarray, A: np.ndarray, P: np.ndarray, l2: float,
             free_cols: np.ndarray) -> tuple[float, np.ndarray]:
    c = P.shape[1]
    theta = flat.reshape(c, -1)
    Z = A @ theta.T
    logq = log_softmax(Z, axis=1)
    n = len(A)
    loss = -float(np.sum(P * logq)) / n
    grad = ((softmax(Z, axis=1) - P).T @ A) / n
    reg = theta[:, free_cols]
    loss += 0.5 * l2 * float(np.sum(reg**2))
    grad[:, free_cols] += l2 * reg
    return loss, grad.ravel()


def fit_cross_entropy(X: np.ndarray, P: np.ndarray, init: np.ndarray | None = None,
                      l2: float = 1e-8, max_iter: int = 5000) -> np.ndarray:
    """Softmax parameters minimising the cross-entropy to the answers ``P`` (soft labels),
    with a small L2 penalty on the weights (not the biases); L-BFGS with the analytic
    gradient. Returns ``theta`` (c, d + 1)."""
    A = _design(X)
    c = P.shape[1]
    start = np.zeros((c, A.shape[1])) if init is None else init
    free_cols = np.arange(A.shape[1] - 1)
    res = minimize(_ce_loss, start.ravel(), args=(A, P, l2, free_cols), jac=True,
                   method="L-BFGS-B", options={"maxiter": max_iter, "gtol": 1e-12,
                                               "ftol": 1e-15})
    return np.asarray(res.x).reshape(c, -1)


def _interval_loss(flat: np.ndarray, A: np.ndarray, log_lo: np.ndarray, has_lo: np.ndarray,
                   log_hi: np.ndarray, anchor: np.ndarray,
                   mu: float) -> tuple[float, np.ndarray]:
    theta = flat.reshape(anchor.shape)
    logq = log_softmax(A @ theta.T, axis=1)
    above = np.maximum(logq - log_hi, 0.0)
    below = np.where(has_lo, np.maximum(log_lo - logq, 0.0), 0.0)
    g = 2.0 * (above - below)  # d loss / d log q
    gz = g - np.exp(logq) * g.sum(axis=1, keepdims=True)
    shift = theta - anchor
    loss = float(np.sum(above**2 + below**2)) + mu * float(np.sum(shift**2))
    return loss, (gz.T @ A + 2.0 * mu * shift).ravel()


def fit_intervals(X: np.ndarray, P: np.ndarray, half_width: float, init: np.ndarray,
                  mu: float = 1e-6, max_iter: int = 5000) -> np.ndarray:
    """The softmax parameters nearest ``init`` whose every probability lies within
    ``half_width`` of the rounded answer ``P`` (an answer rounded to r decimals says
    only that the true value is within 0.5e-r of it).

    Minimises the squared distance of each log-probability to its interval (0 inside)
    plus ``mu`` times the squared distance to ``init`` (the cross-entropy fit): a rounded
    0 (a saturated class) then asks only for a probability below the half-width, where
    the cross-entropy fit asks for exactly 0 and so for ever larger weights.
    Returns ``theta`` (c, d + 1).
    """
    A = _design(X)
    lo = P - half_width
    has_lo = lo > 0
    with np.errstate(divide="ignore"):
        log_lo = np.log(np.where(has_lo, lo, 1.0))
        log_hi = np.log(np.minimum(P + half_width, 1.0))
    res = minimize(_interval_loss, init.ravel(), args=(A, log_lo, has_lo, log_hi, init, mu),
                   jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": 1e-12,
                                                         "ftol": 1e-15})
    return np.asarray(res.x).reshape(init.shape)


def _barrier(s: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """-log(s) and its derivative, continued quadratically below ``eps`` (finite for an
    answer the start violates)."""
    inside = s >= eps
    safe = np.maximum(s, eps)
    t = s - eps
    value = np.where(inside, -np.log(safe), -np.log(eps) - t / eps + t * t / (2 * eps * eps))
    slope = np.where(inside, -1.0 / safe, -1.0 / eps + t / (eps * eps))
    return value, slope


def _center_loss(flat: np.ndarray, A: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 both: np.ndarray, shape: tuple[int, int],
                 eps: float) -> tuple[float, np.ndarray]:
    theta = flat.reshape(shape)
    q = softmax(A @ theta.T, axis=1)
    v_hi, d_hi = _barrier(hi - q, eps)
    v_lo, d_lo = _barrier(q - lo, eps)
    # one-sided answers (a rounded 0 or 1): only a violation costs, as in fit_intervals
    over = np.where(both, 0.0, np.maximum(q - hi, 0.0) + np.minimum(q - lo, 0.0))
    scale = 1.0 / (eps * eps)
    loss = float(np.sum(v_hi[both]) + np.sum(v_lo[both])) + 0.5 * scale * float(
        np.sum(over**2))
    gq = np.where(both, d_lo - d_hi, 0.0) + scale * over  # d loss / d q
    gz = q * (gq - np.sum(q * gq, axis=1, keepdims=True))
    return loss, (gz.T @ A).ravel()


def center_intervals(X: np.ndarray, P: np.ndarray, half_width: float, init: np.ndarray,
                     max_iter: int = 3000) -> np.ndarray:
    """The analytic centre of the softmax models whose probabilities all lie within
    ``half_width`` of the rounded answers ``P``, from ``init`` (e.g. :func:`fit_intervals`).

    Maximises the sum of the logs of the slacks q - (P - half_width) and
    (P + half_width) - q (in probability) of the answers bounded on both sides; an
    answer rounded to 0 or 1 only bounds its probability from one side, and costs only
    when violated (a barrier there would push towards saturation, i.e. larger weights). A
    start outside an interval is pulled in by the barrier's quadratic continuation.
    Rounding makes every model inside these intervals equally likely, and the centre is
    the estimate least likely to be wrong on an unseen point: the model nearest ``init``
    lies on the set's boundary.
    Returns ``theta`` (c, d + 1).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (40, 2)); theta = np.array([[2.0, -1, 0.3], [0, 0, 0]])
    >>> P = np.round(softmax(_design(X) @ theta.T, axis=1), 2)
    >>> found = center_intervals(X, P, 0.005, fit_intervals(X, P, 0.005, np.zeros((2, 3))))
    >>> q = softmax(_design(X) @ found.T, axis=1)
    >>> bool(np.all(np.abs(q - P) <= 0.005 + 1e-9))
    True
    """
    A = _design(X)
    lo, hi = P - half_width, P + half_width
    res = minimize(_center_loss, init.ravel(),
                   args=(A, lo, np.minimum(hi, 1.0), (lo > 0) & (hi < 1), init.shape,
                         half_width * 1e-3),
                   jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.asarray(res.x).reshape(init.shape)

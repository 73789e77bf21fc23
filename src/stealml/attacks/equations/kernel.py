"""Kernel logistic regression from probabilities: the weights and the representers.

A KLR model answers softmax(sum_i alpha_i K(x, x_i) + b) with an RBF kernel
K(x, z) = exp(-gamma ||x - z||^2) and representers x_i taken from the training set. Each
answer gives c - 1 equations in the s(d + c) + c unknowns, the representers among them:
solving the system leaks training points (paper Figure 2). As the paper, the attacker
knows the number s of representers (over-estimating it only adds unused ones) and the
kernel width gamma (the service's documented kernel; stealml's KLR target publishes it),
but not the training data: the representers start as uniform random points of the space.
Levenberg-Marquardt on the centred log-probabilities, with the analytic Jacobian and the
weights of each start solved by least squares, restarts until the answers are fitted.

References: Tramèr et al., USENIX Security 2016, section 4.1.3 and Figure 2.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from stealml.attacks.equations.logistic import to_logistic_regression
from stealml.attacks.equations.queries import Table, balanced_rows
from stealml.exceptions import ConfigurationError
from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.oracles.base import Oracle, valid_rows_only

if TYPE_CHECKING:
    from stealml.attacks.equations import EquationSolving

__all__ = ["fit_kernel_logreg", "make_kernel_logreg", "match_representers", "run_kernel"]


def _split(p: np.ndarray, s: int, d: int, c: int) -> tuple[np.ndarray, ...]:
    return p[:s * d].reshape(s, d), p[s * d:s * d + s * c].reshape(s, c), p[s * d + s * c:]


def _kernel(X: np.ndarray, R: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    diff = X[:, None, :] - R[None]
    return np.exp(-gamma * np.einsum("nsd,nsd->ns", diff, diff)), diff


def _residual(p: np.ndarray, X: np.ndarray, T: np.ndarray, s: int,
              gamma: float) -> np.ndarray:
    R, a, b = _split(p, s, X.shape[1], T.shape[1])
    out = _kernel(X, R, gamma)[0] @ a + b
    return (out - out.mean(axis=1, keepdims=True) - T).ravel()


def _jacobian(p: np.ndarray, X: np.ndarray, T: np.ndarray, s: int,
              gamma: float) -> np.ndarray:
    n, d = X.shape
    c = T.shape[1]
    R, a, _ = _split(p, s, d, c)
    K, diff = _kernel(X, R, gamma)
    C = np.eye(c) - 1.0 / c  # centring across classes
    J = np.empty((n, c, s * d + s * c + c))
    # d out_k / d R_il = alpha_ik K_ni 2 gamma (x_nl - R_il)
    J[:, :, :s * d] = (2 * gamma * (K[:, None, :, None] * (a @ C).T[None, :, :, None])
                       * diff[:, None, :, :]).reshape(n, c, s * d)
    J[:, :, s * d:s * d + s * c] = (K[:, None, :, None] * C.T[None, :, None, :]).reshape(
        n, c, s * c)
    J[:, :, s * d + s * c:] = C.T[None]
    return J.reshape(n * c, -1)


def _levenberg_marquardt(p: np.ndarray, X: np.ndarray, T: np.ndarray, s: int, gamma: float,
                         max_iter: int, tol: float) -> tuple[np.ndarray, float]:
    n = len(X)
    r = _residual(p, X, T, s, gamma)
    cost, lam = float(r @ r), 1e-3
    for _ in range(max_iter):
        if cost / n < tol:
            break
        J = _jacobian(p, X, T, s, gamma)
        JtJ, g = J.T @ J, J.T @ r
        diag = np.diag(JtJ).copy() + 1e-30
        improved = False
        while lam < 1e12:
            try:
                trial = p - np.linalg.solve(JtJ + lam * np.diag(diag), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            r_new = _residual(trial, X, T, s, gamma)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                improved = cost - c_new > 1e-6 * cost
                p, r, cost, lam = trial, r_new, c_new, max(lam / 10, 1e-15)
                break
            lam *= 10
        if not improved:
            break
    return p, cost / n


def fit_kernel_logreg(X: np.ndarray, T: np.ndarray, s: int, gamma: float, restarts: int,
                      rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
                      max_iter: int = 200,
                      tol: float = 1e-22) -> tuple[np.ndarray, float, int]:
    """Representers, weights and biases (flat) whose centred log-probabilities match
    ``T`` at ``X``: the best of up to ``restarts`` starts (uniform representers in
    [lo, hi], weights by least squares)."""
    n = len(X)
    best, best_loss, tries = np.zeros(0), math.inf, 0
    with threadpool_limits(1):  # dense systems of ~1,500 unknowns: one thread is faster
        for tries in range(1, max(restarts, 1) + 1):  # noqa: B007 (reported)
            R0 = rng.uniform(lo, hi, size=(s, X.shape[1]))
            K0 = _kernel(X, R0, gamma)[0]
            sol = np.linalg.lstsq(np.hstack([K0, np.ones((n, 1))]), T, rcond=None)[0]
            start = np.concatenate([R0.ravel(), sol[:-1].ravel(), sol[-1]])
            p, loss = _levenberg_marquardt(start, X, T, s, gamma, max_iter, tol)
            if loss < best_loss:
                best, best_loss = p, loss
            if best_loss < tol * 1e4:
                break
    return best, best_loss, tries


def make_kernel_logreg(representers: np.ndarray, alpha: np.ndarray, bias: np.ndarray,
                       gamma: float, classes: np.ndarray) -> KernelLogisticRegression:
    """A fitted :class:`KernelLogisticRegression` with the given parameters."""
    model = KernelLogisticRegression(gamma=gamma, n_representers=len(representers))
    model.representers_ = np.asarray(representers, dtype=float)
    theta = np.hstack([alpha.T, bias[:, None]])
    linear: LogisticRegression = to_logistic_regression(theta, np.asarray(classes))
    model.linear_ = linear
    model.classes_ = np.asarray(classes)
    model.n_features_in_ = representers.shape[1]
    return model


def match_representers(true: np.ndarray, found: np.ndarray) -> np.ndarray:
    """For each true representer, the largest absolute coordinate error to the found
    representer matched to it (a one-to-one matching minimising those errors).
    Evaluation only: it reads the target's representers."""
    from scipy.optimize import linear_sum_assignment

    cost = np.abs(true[:, None, :] - found[None, :, :]).max(axis=2)
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(true), np.inf)
    out[rows] = cost[rows, cols]
    return out


def run_kernel(attack: EquationSolving, oracle: Oracle, table: Table,
               rng: np.random.Generator) -> tuple[Any, bool, dict[str, Any]]:
    """Ask uniform points of the box (twice the unknowns over c - 1 equations each, or
    the budget; valid rows for an API that takes raw rows only) and fit representers and
    weights."""
    if attack.gamma is None:
        raise ConfigurationError("kernel-logreg needs the kernel width: give gamma")
    space = oracle.space
    lo, hi = space.encoded_bounds()
    free = hi > lo
    c = len(oracle.classes) if oracle.classes is not None else 2
    s = attack.n_representers
    k = attack.n_unknowns(len(lo), c)
    m = attack.n_queries or oracle.ledger.remaining or math.ceil(2 * k / (c - 1))
    if valid_rows_only(oracle):  # an API of raw rows: no one-hot column between 0 and 1
        table.ask(balanced_rows(space, m, rng))
    else:
        table.ask(np.where(free, rng.uniform(lo, hi, size=(m, len(lo))), lo))
    X, P = table.data()
    with np.errstate(divide="ignore"):
        L = np.log(np.maximum(P, 1e-300))
    T = L - L.mean(axis=1, keepdims=True)
    flat, loss, tries = fit_kernel_logreg(X[:, free], T, s, attack.gamma, attack.restarts,
                                          rng, lo[free], hi[free])
    R, a, b = _split(flat, s, int(free.sum()), c)
    reps = np.tile(lo, (s, 1))
    reps[:, free] = R
    model = make_kernel_logreg(reps, a, b, attack.gamma, np.asarray(table.classes))
    info = {"unknowns": k, "queries_asked": len(X), "loss_per_point": loss,
            "restarts": tries, "solver": "Levenberg-Marquardt on centred log-probabilities"}
    return model, bool(loss < 1e-18 and len(X) * (c - 1) >= k), info

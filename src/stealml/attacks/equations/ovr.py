"""One-vs-rest logistic regression from probabilities: nonlinear least squares.

scikit-learn's one-vs-rest model answers p_j = sigmoid(z_j) / sum_k sigmoid(z_k) with
z_k = w_k.x + b_k. Each answer gives c - 1 equations log(p_j / p_0) = log sigmoid(z_j) -
log sigmoid(z_0) in the c(d + 1) unknowns, so ceil(c(d + 1) / (c - 1)) answers can fix
them all. They are not linear, but sigmoid(z_ij) = p_ij s_i with s_i the row's
normaliser: given the m normalisers, every class's logits are linear in its parameters.
Variable projection solves for the normalisers alone (Levenberg-Marquardt, analytic
Jacobian), then a few Levenberg-Marquardt steps on all parameters polish the result.
Queries are valid rows of the feature space: the model is then determined on every
input the API accepts (with one-hot columns, parameters along their redundant
directions are not, and need not be).

References: Tramèr et al., USENIX Security 2016, section 4.1.2 (multiclass LR, OvR).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit, log_expit
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import LabelBinarizer
from threadpoolctl import threadpool_limits

from stealml.attacks.equations.logistic import make_logistic_regression
from stealml.attacks.equations.queries import Table, balanced_rows, row_rank
from stealml.oracles.base import Oracle

if TYPE_CHECKING:
    from stealml.attacks.equations import EquationSolving

__all__ = ["make_one_vs_rest", "run_ovr", "solve_ovr"]


def make_one_vs_rest(theta: np.ndarray, classes: np.ndarray) -> OneVsRestClassifier:
    """A fitted scikit-learn ``OneVsRestClassifier`` of logistic regressions."""
    model = OneVsRestClassifier(LogisticRegression())
    model.estimators_ = [make_logistic_regression(t[None, :-1], t[-1:], [0, 1])
                         for t in theta]
    model.label_binarizer_ = LabelBinarizer(sparse_output=True).fit(classes)
    model.classes_ = model.label_binarizer_.classes_
    model.n_features_in_ = theta.shape[1] - 1
    return model


def _residual(theta: np.ndarray, A: np.ndarray, target: np.ndarray) -> np.ndarray:
    ls = log_expit(A @ theta.T)
    return np.asarray((ls[:, 1:] - ls[:, :1]) - target)


def _jacobian(theta: np.ndarray, A: np.ndarray) -> np.ndarray:
    """d residual[i, j-1] / d theta: +s(-z_ij) a_i on theta_j, -s(-z_i0) a_i on theta_0."""
    n, c = len(A), theta.shape[0]
    g = expit(-(A @ theta.T))  # d log sigmoid(z) / dz
    J = np.zeros((n, c - 1, c, A.shape[1]))
    for j in range(1, c):
        J[:, j - 1, j, :] = g[:, j:j + 1] * A
        J[:, j - 1, 0, :] = -g[:, :1] * A
    return J.reshape(n * (c - 1), c * A.shape[1])


def _levenberg_marquardt(theta: np.ndarray, A: np.ndarray, target: np.ndarray,
                         max_iter: int = 200) -> tuple[np.ndarray, float]:
    shape = theta.shape
    x = theta.ravel().copy()
    r = _residual(x.reshape(shape), A, target).ravel()
    cost = float(r @ r)
    lam = 1e-3
    for _ in range(max_iter):
        if cost < 1e-26:
            break
        J = _jacobian(x.reshape(shape), A)
        JtJ, g = J.T @ J, J.T @ r
        diag = np.diag(JtJ).copy() + 1e-12
        improved = False
        for _ in range(30):
            try:
                step = np.linalg.solve(JtJ + lam * np.diag(diag), -g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            x_new = x + step
            r_new = _residual(x_new.reshape(shape), A, target).ravel()
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                x, r, cost = x_new, r_new, cost_new
                lam = max(lam / 10, 1e-15)
                improved = True
                break
            lam *= 10
        if not improved:
            break
    return x.reshape(shape), cost


def _logits(P: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_ij = logit(p_ij e^u_i) and d z_ij / d u_i = 1 / (1 - p_ij e^u_i)."""
    q = np.clip(P * np.exp(u)[:, None], 1e-300, 1 - 1e-16)
    return np.log(q) - np.log1p(-q), 1.0 / (1.0 - q)


def _column_basis(A: np.ndarray) -> np.ndarray:
    """An orthonormal basis of A's column space. Valid rows of a space with one-hot
    blocks make A rank-deficient (each block sums to 1, like the bias column): the basis
    keeps only the directions the rows span."""
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(A.shape) * np.finfo(float).eps)) if len(s) else 0
    return U[:, :rank]


def _solve_normalisers(A: np.ndarray, P: np.ndarray, u0: np.ndarray | None = None,
                       max_iter: int = 500) -> tuple[np.ndarray, float]:
    """Variable projection: find u_i = log sum_k sigmoid(z_ik) for every row.

    sigmoid(z_ij) = p_ij e^u_i, so given u every class's logits are linear in its
    parameters: minimise over u alone the part of logit(p e^u) that no parameters can
    explain (its projection off the column space of A), by Levenberg-Marquardt with the
    analytic Jacobian. u stays below -log max_j p_ij (each sigmoid below 1)."""
    Q = _column_basis(A)

    def project(V: np.ndarray) -> np.ndarray:
        return V - Q @ (Q.T @ V)

    cap = -np.log(P.max(axis=1)) - 1e-12
    u = np.minimum(np.zeros(len(A)) if u0 is None else u0, cap - 1e-6)
    Z, D = _logits(P, u)
    R = project(Z)
    cost = float(np.sum(R**2))
    lam = 1e-3
    for _ in range(max_iter):
        if cost < 1e-28:
            break
        # residual column j = project(Z[:, j]); d/du = project(diag(D[:, j]))
        J = np.vstack([project(np.diag(D[:, j])) for j in range(P.shape[1])])
        r = R.T.ravel()
        JtJ, g = J.T @ J, J.T @ r
        scale = np.diag(JtJ) + 1e-15
        for _ in range(40):
            step = np.linalg.solve(JtJ + lam * np.diag(scale), -g)
            u_new = np.minimum(u + step, cap)
            Z_new, D_new = _logits(P, u_new)
            R_new = project(Z_new)
            cost_new = float(np.sum(R_new**2))
            if cost_new < cost:
                u, D, R, cost = u_new, D_new, R_new, cost_new
                Z = Z_new
                lam = max(lam / 10, 1e-16)
                break
            lam *= 10
        else:
            break
    theta = np.linalg.lstsq(A, Z, rcond=None)[0].T
    return theta, cost


def solve_ovr(X: np.ndarray, P: np.ndarray, free: np.ndarray, restarts: int,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One-vs-rest parameters (c, d + 1) from answers ``P`` at ``X``: variable
    projection for the row normalisers, then Levenberg-Marquardt on all parameters;
    with the fewest answers a start can end in a spurious minimum (seen from its
    residual), and up to ``restarts`` random starts of the normalisers follow."""
    rng = np.random.default_rng(0) if rng is None else rng
    cols = np.r_[np.flatnonzero(free), X.shape[1]]
    A = np.hstack([X, np.ones((len(X), 1))])[:, cols]
    with np.errstate(divide="ignore"):
        L = np.log(np.maximum(P, 1e-300))
    cap = -np.log(P.max(axis=1))
    best, best_cost, tries = np.zeros((P.shape[1], len(cols))), math.inf, 0
    with threadpool_limits(1):  # small dense systems: BLAS threads only contend
        for tries in range(1, max(restarts, 0) + 2):
            # u_i = log sum_k sigmoid(z_ik) lies in (log max_k sigmoid, log c)
            u0 = None if tries == 1 else cap - rng.uniform(0.0, 2.0, len(A))
            theta, _ = _solve_normalisers(A, P, u0)
            theta, cost = _levenberg_marquardt(theta, A, L[:, 1:] - L[:, :1], max_iter=100)
            if cost < best_cost:
                best, best_cost = theta, cost
            if best_cost < 1e-20:
                break
    out = np.zeros((P.shape[1], X.shape[1] + 1))
    out[:, cols] = best
    return out, {"residual": float(math.sqrt(best_cost)), "exact": bool(best_cost < 1e-20),
                 "starts": tries}


MOST_ROWS = 5  # without n_queries, rows asked: at most this many times the minimum


def run_ovr(attack: EquationSolving, oracle: Oracle, table: Table,
            rng: np.random.Generator) -> tuple[Any, bool, dict[str, Any]]:
    """Ask balanced valid rows of the space and solve: two more than the minimum
    ceil(c r / (c - 1)) (r the rank of valid rows with a bias), or the budget up to
    ``MOST_ROWS`` times the minimum; while the
    solution leaves a residual, two more rows, up to c more.

    At the very minimum the system is square and a start can end in a spurious root
    (Adult-Race: exact on 4 of 5 seeds with 123 rows, 5 of 5 with 125).
    """
    space = oracle.space
    lo, hi = space.encoded_bounds()
    free = hi > lo
    c = len(oracle.classes) if oracle.classes is not None else 2
    least = math.ceil(c * row_rank(space) / (c - 1))
    # a budget above the minimum buys better-conditioned equations: spend it, up to
    # MOST_ROWS times the minimum (the solver's cost grows with the cube of the rows:
    # 404 rows of Adult-income took 20 s, 1,010 took 170 s, 3,000 ran past 5 minutes)
    m = attack.n_queries or min(oracle.ledger.remaining or least + 2,
                                max(least + 2, MOST_ROWS * least))
    table.ask(balanced_rows(space, m, rng))
    while True:
        X, P = table.data()
        theta, info = solve_ovr(X, P, free, attack.restarts, rng)
        if info["exact"] or table.querier.exhausted or len(X) >= max(m, least + c) or \
                attack.n_queries is not None:
            break
        table.ask(balanced_rows(space, 2, rng))
    info.update({"unknowns": int(c * (free.sum() + 1)), "least": least,
                 "queries_asked": len(X), "solver": "variable projection"})
    return make_one_vs_rest(theta, np.asarray(table.classes)), info["exact"], info

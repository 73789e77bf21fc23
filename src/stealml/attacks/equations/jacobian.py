"""Adaptive queries for one-hidden-layer MLPs: finite-difference Jacobians.

With outputs g(x) = V^T f(W^T x + b) + beta (centred log-probabilities), the Jacobian at x
is V^T diag(f'(W^T x + b)) W^T: its rows lie in the span of the first layer's weight
vectors, an h-dimensional subspace of the d inputs. Full Jacobians (d + 1 queries each)
at a few points reveal that subspace (their singular values drop by orders of magnitude
after the h-th); Jacobians along its h directions (h + 1 queries each) at more points
then form a tensor sum_j f'_j(x_p) v_j (x) w_j whose decomposition (Jennrich's
simultaneous diagonalisation over two output mixtures) gives each hidden unit's weight
direction; the profile of f'_j along it gives the unit's scale and bias, and the output
layer follows by least squares. Levenberg-Marquardt on every answer, the nudged ones
entering as exact difference quotients, then polishes the h-dimensional network, which
is lifted back to the d inputs.

Nudges of 2e-8 move one-hot columns off 0 and 1: the design needs an API that takes
points of the encoded box (the model's own input, as Open Inference Protocol servers
such as MLServer or Triton, or a local model). A service that takes only raw feature
values rejects such rows before charging, and the caller falls back to valid rows.

References: Tramèr et al., USENIX Security 2016, section 4.1.2 (MLPs); the subspace and
tensor steps follow Jagielski et al., "High Accuracy and High Fidelity Extraction of
Neural Networks", USENIX Security 2020, and Janzamin et al., "Beating the Perils of
Non-Convexity", 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from stealml.attacks.equations.mlp import ACTIVATIONS, unpack
from stealml.attacks.equations.queries import Table

__all__ = ["EPS", "Probes", "decompose", "design_cost", "extract", "fit_projected", "row_space"]

EPS = 2e-8  # forward differences: roundoff ~1e-16 / EPS and truncation ~EPS balance


def centred_log(P: np.ndarray) -> np.ndarray:
    L = np.log(np.maximum(P, 1e-300))
    return np.asarray(L - L.mean(axis=1, keepdims=True))


@dataclass
class Probes:
    """Every answer bought, as centred log-probabilities; a nudged row remembers its base
    row and signed step, so that the fit can use it as a difference quotient."""

    table: Table
    lo: np.ndarray
    hi: np.ndarray
    X: list[np.ndarray] = field(default_factory=list)
    T: list[np.ndarray] = field(default_factory=list)
    base: list[np.ndarray] = field(default_factory=list)
    step: list[np.ndarray] = field(default_factory=list)

    @property
    def n(self) -> int:
        return sum(len(x) for x in self.X)

    def _add(self, X: np.ndarray, P: np.ndarray, base: np.ndarray, step: np.ndarray) -> None:
        self.X.append(X)
        self.T.append(centred_log(P))
        self.base.append(base)
        self.step.append(step)

    def values(self, X: np.ndarray) -> int:
        """Ask plain points; returns how many were answered."""
        asked, P = self.table.ask(X)
        if len(asked):
            self._add(asked, P, np.full(len(asked), -1), np.zeros(len(asked)))
        return len(asked)

    def jacobian(self, x: np.ndarray, directions: np.ndarray) -> np.ndarray | None:
        """The Jacobian of the centred log-probabilities at ``x`` along ``directions``
        (rows), by forward differences; None when the budget ran out."""
        up = np.all(x + EPS * directions <= self.hi + 1e-12, axis=1)
        steps = np.where(up, EPS, -EPS)
        X = np.vstack([x, x + steps[:, None] * directions])
        asked, P = self.table.ask(X)
        if len(asked) < len(X):
            return None
        n0 = self.n
        self._add(asked, P, np.r_[-1, np.full(len(directions), n0)], np.r_[0.0, steps])
        T = self.T[-1]
        return np.asarray(((T[1:] - T[0]) / steps[:, None]).T)

    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.vstack(self.X), np.vstack(self.T), np.concatenate(self.base),
                np.concatenate(self.step))


def row_space(jacobians: list[np.ndarray], hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis (d, hidden) of the span of the Jacobians' rows, and all the
    singular values (relative to the largest): a gap after ``hidden`` confirms it."""
    _, s, Vt = np.linalg.svd(np.vstack(jacobians), full_matrices=False)
    return np.asarray(Vt[:hidden].T), s / s[0]


def decompose(G: np.ndarray, U: np.ndarray, activation: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """First-layer weights A (h, h) and biases (h,) of the projected network from the
    projected Jacobians ``G`` (points, outputs, h) at the projected points ``U``.

    G_p = V^T diag(f'(A^T u_p + b)) A^T: two random mixtures over the outputs M_a, M_b
    share the factors, and the eigenvectors of M_a^T pinv(M_b^T) are the columns of A up
    to scale. Each unit's coefficients then trace f' along its direction: |c_pj| =
    kappa_j sech^2(lambda_j t_pj + b_j) for tanh (logistic: of half the argument).
    """
    c, h = G.shape[1], G.shape[2]
    a, b = rng.normal(size=c), rng.normal(size=c)
    Ma, Mb = np.einsum("k,pki->pi", a, G), np.einsum("k,pki->pi", b, G)
    _, vecs = np.linalg.eig(Ma.T @ np.linalg.pinv(Mb.T))
    W = np.real(vecs)
    W /= np.linalg.norm(W, axis=0)
    C = G @ np.linalg.pinv(W.T)  # G_p = sum_j C[p, :, j] w_j^T
    half = 2.0 if activation == "logistic" else 1.0
    scale, bias = np.ones(h), np.zeros(h)
    for j in range(h):
        ly = np.log(np.maximum(np.linalg.norm(C[:, :, j], axis=1), 1e-300))
        t = U @ W[:, j]

        def resid(p: np.ndarray, t: np.ndarray = t, ly: np.ndarray = ly) -> np.ndarray:
            z = p[0] * t + p[1]
            v = ly + 2.0 * (np.logaddexp(z, -z) - math.log(2.0))
            return np.asarray(v - v.mean())

        best = None
        for s0 in (0.3, 1.0, 3.0, 10.0):
            for b0 in (-2.0, 0.0, 2.0):
                res = least_squares(resid, [s0, b0], method="lm")
                if best is None or res.cost < best.cost:
                    best = res
        if best is not None:
            scale[j], bias[j] = half * best.x[0], half * best.x[1]
    return W * scale, bias


def _difference(R: np.ndarray, base: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Nudged rows become (R - R[base]) / step: exact difference quotients."""
    out = R.copy()
    m = base >= 0
    shape = (-1,) + (1,) * (R.ndim - 1)
    out[m] = (R[m] - R[base[m]]) / step[m].reshape(shape)
    return out


def _residual(flat: np.ndarray, Z: np.ndarray, T: np.ndarray, base: np.ndarray,
              step: np.ndarray, h: int, activation: str) -> np.ndarray:
    W1, b1, W2, b2 = unpack(flat, Z.shape[1], h, T.shape[1])
    out = ACTIVATIONS[activation][0](Z @ W1 + b1) @ W2 + b2
    return _difference(out - out.mean(axis=1, keepdims=True) - T, base, step).ravel()


def _jacobian(flat: np.ndarray, Z: np.ndarray, T: np.ndarray, base: np.ndarray,
              step: np.ndarray, h: int, activation: str) -> np.ndarray:
    n, d = Z.shape
    o = T.shape[1]
    W1, b1, W2, _ = unpack(flat, d, h, o)
    f, df = ACTIVATIONS[activation]
    H = f(Z @ W1 + b1)
    C = np.eye(o) - 1.0 / o  # centring across outputs
    G = df(H)[:, None, :] * (W2 @ C).T[None, :, :]  # d out_k / d pre-activation_j
    J = np.empty((n, o, d * h + h + h * o + o))
    J[:, :, :d * h] = (Z[:, None, :, None] * G[:, :, None, :]).reshape(n, o, d * h)
    J[:, :, d * h:d * h + h] = G
    J[:, :, d * h + h:-o] = (H[:, None, :, None] * C.T[None, :, None, :]).reshape(n, o, h * o)
    J[:, :, -o:] = C.T[None]
    return _difference(J, base, step).reshape(n * o, -1)


def fit_projected(flat: np.ndarray, Z: np.ndarray, T: np.ndarray, base: np.ndarray,
                  step: np.ndarray, h: int, activation: str, max_iter: int = 40,
                  tol: float = 1e-22) -> tuple[np.ndarray, float]:
    """Levenberg-Marquardt on every answer (nudged rows as difference quotients), from
    ``flat``; returns the weights and the loss per answer."""
    # systems of a few hundred unknowns: one BLAS thread (threads spin against each
    # other on a busy machine: a 525-unknown solve measured 24x slower with two)
    with threadpool_limits(1):
        return _levenberg_marquardt(flat, Z, T, base, step, h, activation, max_iter, tol)


def _levenberg_marquardt(flat: np.ndarray, Z: np.ndarray, T: np.ndarray, base: np.ndarray,
                         step: np.ndarray, h: int, activation: str, max_iter: int,
                         tol: float) -> tuple[np.ndarray, float]:
    n = len(Z)
    args = (Z, T, base, step, h, activation)
    r = _residual(flat, *args)
    cost, lam = float(r @ r), 1e-6
    for _ in range(max_iter):
        if cost / n < tol:
            break
        improved = False
        J = _jacobian(flat, *args)
        JtJ, g = J.T @ J, J.T @ r
        diag = np.diag(JtJ).copy() + 1e-30
        while lam < 1e12:
            try:
                trial = flat - np.linalg.solve(JtJ + lam * np.diag(diag), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            r_new = _residual(trial, *args)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                improved = cost - c_new > 1e-3 * cost
                flat, r, cost, lam = trial, r_new, c_new, max(lam / 10, 1e-15)
                break
            lam *= 10
        else:
            break
        if not improved:
            break
    return flat, cost / n


def design_cost(d: int, c: int, h: int, n_values: int) -> int:
    """Queries of the design: full Jacobians until the rows can span h dimensions (one
    spare point), projected Jacobians up to h points, and plain points."""
    n_full = math.ceil(h / (c - 1)) + 1
    return n_full * (d + 1) + max(h - n_full, 0) * (h + 1) + n_values


def _output_layer(Z: np.ndarray, T: np.ndarray, A: np.ndarray, b1: np.ndarray,
                  activation: str) -> np.ndarray:
    H = ACTIVATIONS[activation][0](Z @ A + b1)
    sol = np.linalg.lstsq(np.hstack([H, np.ones((len(H), 1))]), T, rcond=None)[0]
    return np.concatenate([A.ravel(), b1, sol[:-1].ravel(), sol[-1]])


def extract(probes: Probes, points: np.ndarray, values: np.ndarray, free: np.ndarray,
            c: int, h: int, activation: str, restarts: int,
            rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]] | None:
    """Take Jacobians at ``points`` (valid rows; at least h of them), ask ``values``,
    and fit; returns the flat weights of the full network and facts, or None when the
    budget ran out."""
    d = len(free)
    n_full = math.ceil(h / (c - 1)) + 1
    E = np.eye(d)[free]
    jacobians = []
    for x in points[:n_full]:
        J = probes.jacobian(x, E)
        if J is None:
            return None
        jacobians.append(J)
    basis, sv = row_space(jacobians, h)
    B = np.zeros((d, h))
    B[free] = basis
    G = [J @ basis for J in jacobians]
    for x in points[n_full:max(h, n_full)]:
        J = probes.jacobian(x, B.T)
        if J is None:
            return None
        G.append(J)
    if probes.values(values) < len(values):
        return None
    X, T, base, step = probes.data()
    Z = X @ B
    U = points[:max(h, n_full)] @ B
    plain = base < 0
    best, best_loss = np.zeros(0), math.inf
    for _ in range(max(restarts, 1)):
        A, b1 = decompose(np.array(G), U, activation, rng)
        start = _output_layer(Z[plain], T[plain], A, b1, activation)
        flat, loss = fit_projected(start, Z, T, base, step, h, activation)
        if loss < best_loss:
            best, best_loss = flat, loss
        if best_loss < 1e-10:
            break
    A, b1, W2, b2 = unpack(best, h, h, T.shape[1])
    full = np.concatenate([(B @ A).ravel(), b1, W2.ravel(), b2])
    r = _residual(full, X[plain], T[plain], np.full(plain.sum(), -1), np.zeros(plain.sum()),
                  h, activation)
    gap = float(sv[h] / sv[h - 1]) if len(sv) > h else math.nan
    return full, {"loss_per_point": best_loss, "value_rms": float(np.sqrt(np.mean(r**2))),
                  "jacobian_gap": gap, "plain_points": int(plain.sum())}

"""From first-layer hyperplanes to a whole one-hidden-layer network, exactly.

Once every hidden neuron's hyperplane w.y + b = 0 is known up to scale and sign, each
neuron is refined alone: in a ball about its hyperplane that no other hyperplane crosses,
f(y) = 1[z(y) > 0] M [y; 1] + L [y; 1] exactly, with M = a [w; b] (a the neuron's output
weights), so a small least-squares solve gives w and b to machine precision. Over the
whole space, f is linear in relu(z_i) and in a linear term that absorbs every neuron whose
sign was guessed wrong (a relu(-z) = a relu(z) - a z): the linear term's input part is
minus the sum of a_i w_i over the wrongly signed neurons, a subset sum that fixes every
sign; the output layer is then a least-squares solve.

References: Carlini, Jagielski and Mironov, CRYPTO 2020, sections 4.3-4.5 (weights up to
scale, sign recovery, the last layer by least squares, precision refinement).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["Layer", "ball_points", "global_fit", "local_fit", "solve_signs"]


@dataclass
class Layer:
    """Hidden weights ``W`` (h, d), biases ``b`` (h,) and output weights ``A`` (o, h),
    output biases ``c`` (o,), in scaled coordinates."""

    W: np.ndarray
    b: np.ndarray
    A: np.ndarray
    c: np.ndarray

    def hidden(self, Y: np.ndarray) -> np.ndarray:
        return np.maximum(Y @ self.W.T + self.b, 0.0)

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        return self.hidden(Y) @ self.A.T + self.c


def ball_points(W: np.ndarray, b: np.ndarray, P: np.ndarray, n: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """For each neuron, ``n`` points in a ball about a point of its hyperplane that no
    other known hyperplane crosses (the centre is the farthest from them of a few
    candidates on the plane near its critical point), half of them mirrored across the
    plane so both sides hold enough points to fit."""
    h, d = W.shape
    out = []
    for i in range(h):
        cand = P[i] + 0.2 * rng.normal(size=(16, d)) / np.sqrt(d)
        cand = np.vstack([P[i], cand])
        cand -= np.outer(cand @ W[i] + b[i], W[i])  # onto the plane
        others = np.abs(cand @ np.delete(W, i, axis=0).T + np.delete(b, i))
        gap = others.min(axis=1) if h > 1 else np.ones(len(cand))
        k = int(np.argmax(gap))
        r = min(0.5 * float(gap[k]), 0.5)
        u = rng.normal(size=(n - n // 2, d))
        u *= (rng.uniform(0.2, 1.0, len(u)) ** (1 / d) / np.linalg.norm(u, axis=1))[:, None]
        mirror = u - 2 * np.outer(u @ W[i], W[i])  # as many points on either side
        out.append(cand[k] + r * np.vstack([u, mirror[:n // 2]]))
    return out


def local_fit(Y: np.ndarray, F: np.ndarray, w: np.ndarray,
              b: float) -> tuple[np.ndarray, float, np.ndarray, float]:
    """One neuron refined from points about its hyperplane where no other neuron changes:
    f = 1[z > 0] M [y; 1] + L [y; 1] with M = a [w; b] of rank one.

    Returns the unit weight row (oriented like ``w``), bias, output weights and the
    largest residual of the fit.
    """
    n, d = Y.shape
    Y1 = np.hstack([Y, np.ones((n, 1))])
    on = (Y @ w + b > 0).astype(float)[:, None]
    X = np.hstack([on * Y1, Y1])
    coef, *_ = scipy.linalg.lstsq(X, F, lapack_driver="gelsy", check_finite=False)
    resid = float(np.max(np.abs(X @ coef - F)))
    U, S, Vt = np.linalg.svd(coef[:d + 1].T, full_matrices=False)
    v, u = Vt[0], U[:, 0] * S[0]
    norm = float(np.linalg.norm(v[:d]))
    if v[:d] @ w < 0:
        v, u = -v, -u
    return v[:d] / norm, float(v[d] / norm), u * norm, resid


def global_fit(Y: np.ndarray, F: np.ndarray, W: np.ndarray, b: np.ndarray,
               linear: bool) -> tuple[Layer, np.ndarray, float]:
    """Output weights by least squares on the hidden activations (and, with ``linear``,
    a linear term in the input, which absorbs the wrongly signed neurons).

    Returns the layer, the linear term's input part (o, d) and the largest residual.
    """
    n, d = Y.shape
    cols = [np.maximum(Y @ W.T + b, 0.0)] + ([Y] if linear else []) + [np.ones((n, 1))]
    H = np.hstack(cols)
    coef, *_ = scipy.linalg.lstsq(H, F, lapack_driver="gelsy", check_finite=False)
    resid = float(np.max(np.abs(H @ coef - F))) if len(F) else np.inf
    h = len(W)
    beta = coef[h:h + d].T if linear else np.zeros((F.shape[1], d))
    return Layer(W, b, coef[:h].T, coef[-1]), beta, resid


def solve_signs(A: np.ndarray, W: np.ndarray, beta: np.ndarray,
                rtol: float = 1e-6) -> tuple[np.ndarray, bool]:
    """Which neurons' signs are wrong: mu in {0, 1}^h with sum_i mu_i A_i W_i^T = -beta.

    A linear solve when the system has full rank; otherwise a meet-in-the-middle search
    over subsets (up to 26 neurons). Returns mu and whether the subset fits ``beta``.
    """
    h = W.shape[0]
    V = np.stack([np.outer(A[:, i], W[i]).ravel() for i in range(h)], axis=1)
    target = -beta.ravel()
    scale = max(float(np.abs(V).max()), float(np.abs(target).max()), 1e-300)

    def fits(mu: np.ndarray) -> bool:
        return bool(np.max(np.abs(V @ mu - target)) <= rtol * scale)

    sol, _, rank, _ = scipy.linalg.lstsq(V, target, lapack_driver="gelsd")
    mu = (sol > 0.5).astype(float)
    if rank == h or fits(mu) or h > 26:
        return mu, fits(mu)
    rng = np.random.default_rng(0)
    r = rng.normal(size=len(target))
    c, tau = V.T @ r, float(target @ r)
    left, right = np.arange(h // 2), np.arange(h // 2, h)

    def sums(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks = np.array(list(itertools.product([0.0, 1.0], repeat=len(idx))))
        return masks, masks @ c[idx]

    ml, sl = sums(left)
    mr, sr = sums(right)
    order = np.argsort(sr)
    sr, mr = sr[order], mr[order]
    tol = 1e-6 * (np.abs(c).sum() + abs(tau))
    for k in range(len(sl)):
        want = tau - sl[k]
        lo, hi = np.searchsorted(sr, [want - tol, want + tol])
        for j in range(lo, hi):
            cand = np.concatenate([ml[k], mr[j]])
            if fits(cand):
                return cand, True
    return mu, False



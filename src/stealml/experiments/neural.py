"""How close a stolen ReLU network is to its target: output error over the input space
(sampled and along lines) and parameter error after aligning neurons.

Evaluation only: these functions read both networks' weights. Outputs are compared as
logits (centred across classes for softmax: the only form the answers determine).

References: Carlini, Jagielski and Mironov, CRYPTO 2020, section 7 (worst-case output
error; parameters equal up to permutation and positive scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from stealml.random import RandomState, as_generator
from stealml.space import FeatureSpace

__all__ = ["aligned_parameter_error", "logits", "output_error", "parameter_error"]


def logits(model: Any, X: np.ndarray) -> np.ndarray:
    """The output layer's pre-activations of a scikit-learn MLP (centred for softmax)."""
    H = np.asarray(X, dtype=float)
    n = len(model.coefs_)
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        H = H @ W + b
        if i < n - 1:
            H = np.maximum(H, 0.0)
    if H.shape[1] > 1:
        H = H - H.mean(axis=1, keepdims=True)
    return H


def output_error(target: Any, stolen: Any, space: FeatureSpace, n_points: int = 20_000,
                 n_lines: int = 50, random_state: RandomState = 0) -> dict[str, float]:
    """Largest logit difference on uniform points of the space and along random lines
    through it (1,000 points each), and the agreement of the predicted labels."""
    rng = as_generator(random_state)
    lo, hi = space.encoded_bounds()
    X = rng.uniform(lo, hi, (n_points, len(lo)))
    a, b = rng.uniform(lo, hi, (n_lines, len(lo))), rng.uniform(lo, hi, (n_lines, len(lo)))
    t = np.linspace(0.0, 1.0, 1000)[None, :, None]
    L = (a[:, None, :] + t * (b - a)[:, None, :]).reshape(-1, len(lo))
    err = {
        "max_logit_error_uniform": float(np.abs(logits(target, X) - logits(stolen, X)).max()),
        "max_logit_error_lines": float(np.abs(logits(target, L) - logits(stolen, L)).max()),
    }
    err["max_logit_error"] = max(err.values())
    err["agreement_uniform"] = float(np.mean(target.predict(X) == stolen.predict(X)))
    return err


def parameter_error(target: Any, stolen: Any, rtol: float = 1e-6) -> float:
    """Largest parameter difference between two one-hidden-layer networks after aligning
    the hidden neurons by permutation and positive scale (each neuron's incoming weights
    scaled to unit norm, its outgoing weights by the inverse).

    A neuron whose incoming weights are below ``rtol`` of the largest never bends the
    output (it is constant: relu(b)), so no attack can see it: it is left out of the
    matching and its constant output is folded into the output bias, on both sides.
    Softmax output weights are compared centred across classes. Infinite when the
    input or output sizes differ.
    """
    if (target.coefs_[0].shape[0] != stolen.coefs_[0].shape[0]
            or target.coefs_[-1].shape[1] != stolen.coefs_[-1].shape[1]
            or len(target.coefs_) != 2 or len(stolen.coefs_) != 2):
        return float("inf")
    (ut, at, ct), (us, as_, cs) = _aligned(target, rtol), _aligned(stolen, rtol)
    if len(ut) > len(us):
        return float("inf")
    cost = np.abs(ut[:, None, :] - us[None, :, :]).max(axis=2) if len(ut) else np.zeros((0, 0))
    rows, cols = linear_sum_assignment(cost)
    worst = float(cost[rows, cols].max()) if len(rows) else 0.0
    extra = np.setdiff1d(np.arange(len(us)), cols)  # must not change the output
    worst = max(worst, float(np.abs(as_[extra]).max(initial=0.0)))
    at_, as2 = at[rows], as_[cols]
    if at.shape[1] > 1:
        at_, as2 = at_ - at_.mean(axis=1, keepdims=True), as2 - as2.mean(axis=1, keepdims=True)
        ct, cs = ct - ct.mean(), cs - cs.mean()
    worst = max(worst, float(np.abs(at_ - as2).max(initial=0.0)),
                float(np.abs(ct - cs).max()))
    return worst


def _aligned(model: Any, rtol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit rows [w; b] of the neurons that bend, their outgoing weights times the
    scale, and the output bias with the constant neurons folded in."""
    W, b = model.coefs_[0].T, model.intercepts_[0]
    A, c = model.coefs_[1], model.intercepts_[1].copy()
    s = np.linalg.norm(W, axis=1)
    bends = s > rtol * max(float(s.max(initial=0.0)), 1e-300)
    c = c + (np.maximum(b[~bends], 0.0)[:, None] * A[~bends]).sum(axis=0)
    rows = np.hstack([W[bends], b[bends, None]]) / s[bends, None]
    return rows, A[bends] * s[bends, None], c


def aligned_parameter_error(target: Any, stolen: Any, match_tol: float = 1e-3,
                            rtol: float = 1e-6) -> dict[str, Any]:
    """Largest parameter difference between two ReLU networks of any depth after
    aligning each hidden layer's neurons by permutation and positive scale, over the
    neurons that match.

    Layer by layer, each neuron's row [w; b] (its inputs aligned with the previous
    layer's matched neurons) is scaled to unit incoming weight, the scale carried into
    the next layer, and the rows paired by least largest difference; pairs closer than
    ``match_tol`` match. A neuron that never bends the answers on the inputs of interest
    (dead, or active everywhere) cannot be recovered as such and stays unmatched; so do
    stand-ins and dead units of the stolen network. Returns ``max_error`` over the
    matched neurons and the output weights between them, and ``matched`` / ``neurons``
    per hidden layer (infinite error when the shapes differ).
    """
    tl = [(W.T, b) for W, b in zip(target.coefs_, target.intercepts_, strict=True)]
    sl = [(W.T, b) for W, b in zip(stolen.coefs_, stolen.intercepts_, strict=True)]
    if (len(tl) != len(sl) or tl[0][0].shape[1] != sl[0][0].shape[1]
            or tl[-1][0].shape[0] != sl[-1][0].shape[0]):
        return {"max_error": float("inf"), "matched": [], "neurons": []}
    d = tl[0][0].shape[1]
    ct, cs = np.arange(d), np.arange(d)
    st, ss = np.ones(d), np.ones(d)
    worst, matched, sizes = 0.0, [], []
    for (Wt, bt), (Ws, bs) in zip(tl[:-1], sl[:-1], strict=True):
        Wt, Ws = Wt[:, ct] * st, Ws[:, cs] * ss
        nt, ns = np.linalg.norm(Wt, axis=1), np.linalg.norm(Ws, axis=1)
        lt = np.flatnonzero(nt > rtol * max(float(nt.max(initial=0.0)), 1e-300))
        ls = np.flatnonzero(ns > rtol * max(float(ns.max(initial=0.0)), 1e-300))
        Rt = np.hstack([Wt[lt], bt[lt, None]]) / nt[lt, None]
        Rs = np.hstack([Ws[ls], bs[ls, None]]) / ns[ls, None]
        cost = np.abs(Rt[:, None, :] - Rs[None, :, :]).max(axis=2)
        rows, cols = linear_sum_assignment(cost) if cost.size else ([], [])
        rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
        good = cost[rows, cols] < match_tol if len(rows) else np.zeros(0, dtype=bool)
        worst = max(worst, float(cost[rows[good], cols[good]].max(initial=0.0)))
        matched.append(int(good.sum()))
        sizes.append(len(Wt))
        ct, cs = lt[rows[good]], ls[cols[good]]
        st, ss = nt[ct], ns[cs]
    At, As = tl[-1][0][:, ct] * st, sl[-1][0][:, cs] * ss
    if At.shape[0] > 1:
        At, As = At - At.mean(axis=0), As - As.mean(axis=0)
    worst = max(worst, float(np.abs(At - As).max(initial=0.0)))
    return {"max_error": worst, "matched": matched, "neurons": sizes}

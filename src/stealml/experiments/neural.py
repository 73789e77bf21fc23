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

__all__ = ["logits", "output_error", "parameter_error"]


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


def parameter_error(target: Any, stolen: Any) -> float:
    """Largest parameter difference after aligning each hidden layer's neurons to the
    target's by permutation and positive scale (each neuron's incoming weights scaled to
    unit norm, its outgoing weights by the inverse). Softmax output weights are compared
    centred across classes. Infinite when the architectures differ."""
    if [w.shape for w in target.coefs_] != [w.shape for w in stolen.coefs_]:
        return float("inf")
    worst = 0.0
    perm_prev = None
    out_scale_t = out_scale_s = None
    for layer in range(len(target.coefs_)):
        Wt = np.hstack([target.coefs_[layer].T, target.intercepts_[layer][:, None]])
        Ws = np.hstack([stolen.coefs_[layer].T, stolen.intercepts_[layer][:, None]])
        if perm_prev is not None and out_scale_t is not None and out_scale_s is not None:
            Wt[:, :-1] = Wt[:, :-1] * out_scale_t[None, :]
            Ws = Ws[:, np.r_[perm_prev, Ws.shape[1] - 1]]
            Ws[:, :-1] = Ws[:, :-1] * out_scale_s[perm_prev][None, :]
        if layer == len(target.coefs_) - 1:
            if Wt.shape[0] > 1:
                Wt, Ws = Wt - Wt.mean(axis=0), Ws - Ws.mean(axis=0)
            worst = max(worst, float(np.abs(Wt - Ws).max()))
            break
        st = np.linalg.norm(Wt[:, :-1], axis=1)
        ss = np.linalg.norm(Ws[:, :-1], axis=1)
        st, ss = np.where(st > 0, st, 1.0), np.where(ss > 0, ss, 1.0)
        ut, us = Wt / st[:, None], Ws / ss[:, None]
        cost = np.abs(ut[:, None, :] - us[None, :, :]).max(axis=2)
        rows, cols = linear_sum_assignment(cost)
        worst = max(worst, float(cost[rows, cols].max()))
        perm_prev, out_scale_t, out_scale_s = cols, st, ss
    return worst

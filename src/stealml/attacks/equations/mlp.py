"""One-hidden-layer MLPs from probabilities: a quasi-Newton fit of the log-probabilities.

The network's centred log-probabilities are its centred output pre-activations, so each
answer gives c - 1 equations (one for two classes) in the k unknowns. The solver fits
them (not the cross-entropy, which stalls in real local minima) with L-BFGS and the
analytic gradient, restarting from fresh random weights until the loss on the queried
points vanishes: a stuck restart shows in its loss.

References: Tramèr et al., USENIX Security 2016, section 4.1.2 (multilayer perceptrons).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer
from threadpoolctl import threadpool_limits

from stealml.attacks.equations.queries import Table
from stealml.exceptions import ConfigurationError, InvalidInputError
from stealml.oracles.base import Oracle

if TYPE_CHECKING:
    from stealml.attacks.equations import EquationSolving

__all__ = ["ACTIVATIONS", "fit_mlp", "make_mlp", "mlp_parameter_error", "run_mlp", "unpack"]

Activation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
ACTIVATIONS: dict[str, Activation] = {
    "tanh": (np.tanh, lambda h: 1.0 - h**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda h: (h > 0).astype(float)),
    "logistic": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda h: h * (1.0 - h)),
}


def unpack(flat: np.ndarray, d: int, h: int, o: int) -> tuple[np.ndarray, ...]:
    i = 0
    W1 = flat[i:i + d * h].reshape(d, h)
    i += d * h
    b1 = flat[i:i + h]
    i += h
    W2 = flat[i:i + h * o].reshape(h, o)
    i += h * o
    return W1, b1, W2, flat[i:i + o]


def _centre(V: np.ndarray) -> np.ndarray:
    return V - V.mean(axis=1, keepdims=True)


def _loss(flat: np.ndarray, X: np.ndarray, T: np.ndarray, W: np.ndarray, h: int,
          activation: str) -> tuple[float, np.ndarray]:
    d, o = X.shape[1], T.shape[1]
    W1, b1, W2, b2 = unpack(flat, d, h, o)
    f, df = ACTIVATIONS[activation]
    H = f(X @ W1 + b1)
    out = H @ W2 + b2
    R = (_centre(out) if o > 1 else out) - T
    R = R * W
    G = 2 * (_centre(R) if o > 1 else R)
    dH = (G @ W2.T) * df(H)
    grad = np.concatenate([(X.T @ dH).ravel(), dH.sum(axis=0), (H.T @ G).ravel(),
                           G.sum(axis=0)])
    return float(np.sum(R**2)), grad


def _targets(P: np.ndarray, min_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """Centred log-probabilities (two classes: the logit) and a 0/1 weight per row."""
    usable = (P.min(axis=1) >= min_probability).astype(float)[:, None]
    L = np.log(np.maximum(P, 1e-300))
    T = L[:, 1:] - L[:, :1] if P.shape[1] == 2 else _centre(L)
    return T, usable


def fit_mlp(X: np.ndarray, P: np.ndarray, hidden: int, activation: str,
            restarts: int, rng: np.random.Generator, min_probability: float = 1e-6,
            tol: float = 1e-22) -> tuple[np.ndarray, float, int]:
    """Weights (flat) whose log-probabilities match ``P`` at ``X``; the best of up to
    ``restarts`` L-BFGS runs (stopping once the loss per point is below ``tol``)."""
    if activation not in ACTIVATIONS:
        raise ConfigurationError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                                 f"not {activation!r}")
    T, W = _targets(P, min_probability)
    d, o = X.shape[1], T.shape[1]
    size = d * hidden + hidden + hidden * o + o
    best, best_loss, tries = np.zeros(size), math.inf, 0
    for tries in range(1, restarts + 1):  # noqa: B007 (reported)
        start = rng.normal(0, 1 / math.sqrt(d), size)
        with threadpool_limits(1):  # small products: BLAS threads only contend
            res = minimize(_loss, start, args=(X, T, W, hidden, activation), jac=True,
                           method="L-BFGS-B",
                           options={"maxiter": 5000, "maxfun": 10000, "gtol": 1e-14,
                                    "ftol": 1e-30, "maxcor": 30})
        if res.fun < best_loss:
            best, best_loss = np.asarray(res.x), float(res.fun)
        if best_loss / max(len(X), 1) < tol:
            break
    return best, best_loss / max(len(X), 1), tries


def make_mlp(flat: np.ndarray, d: int, hidden: int, classes: np.ndarray,
             activation: str) -> MLPClassifier:
    """A fitted scikit-learn ``MLPClassifier`` with the given weights."""
    o = 1 if len(classes) == 2 else len(classes)
    W1, b1, W2, b2 = unpack(flat, d, hidden, o)
    model = MLPClassifier(hidden_layer_sizes=(hidden,), activation=activation)
    model.coefs_ = [W1.copy(), W2.copy()]
    model.intercepts_ = [b1.copy(), b2.copy()]
    model.n_layers_ = 3
    model.n_outputs_ = o
    model.out_activation_ = "logistic" if o == 1 else "softmax"
    model.classes_ = np.asarray(classes)
    model._label_binarizer = LabelBinarizer().fit(classes)
    model.n_features_in_ = d
    model.n_iter_ = 0
    return model


def mlp_parameter_error(target: MLPClassifier, stolen: MLPClassifier) -> float:
    """Largest parameter difference after matching hidden units up to permutation and
    sign (tanh(-z) = -tanh(z); logistic(-z) = 1 - logistic(z), the output bias taking
    the unit's weights); softmax output weights are compared centred across outputs,
    the only form the answers determine. Evaluation only: it reads both models' weights.
    """
    def units(m: MLPClassifier) -> tuple[np.ndarray, np.ndarray]:
        W2, b2 = m.coefs_[1], m.intercepts_[1]
        if W2.shape[1] > 1:
            W2, b2 = _centre(W2), b2 - b2.mean()
        return np.vstack([m.coefs_[0], m.intercepts_[0][None, :], W2.T]).T, b2

    (a, ba), (b, bb) = units(target), units(stolen)
    if a.shape != b.shape:
        return math.inf
    signs = [1.0, -1.0] if target.activation in ("tanh", "logistic") else [1.0]
    costs = np.stack([np.abs(a[:, None, :] - s * b[None, :, :]).max(axis=2) for s in signs])
    rows, cols = linear_sum_assignment(costs.min(axis=0))
    flipped = costs[-1, rows, cols] < costs[0, rows, cols]
    if target.activation == "logistic":
        # a flipped logistic unit moves its output weights into the output bias
        bb = bb + b[cols[flipped], -len(bb):].sum(axis=0)
    return max(float(costs.min(axis=0)[rows, cols].max()), float(np.abs(ba - bb).max()))


def run_mlp(attack: EquationSolving, oracle: Oracle, table: Table,
            rng: np.random.Generator) -> tuple[Any, bool, dict[str, Any]]:
    """The Jacobian design where it applies (three or more classes, tanh or logistic
    units, an API taking points of the encoded box, budget for the design), else
    uniform valid rows (k, or the budget) and the fit from random restarts."""
    space = oracle.space
    lo = space.encoded_bounds()[0]
    c = len(oracle.classes) if oracle.classes is not None else 2
    hidden = attack.hidden_units or 20
    k = attack.n_unknowns(len(lo), c)
    if attack.activation not in ACTIVATIONS:
        raise ConfigurationError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                                 f"not {attack.activation!r}")
    if attack.design not in ("auto", "jacobian", "uniform"):
        raise ConfigurationError("design must be one of auto, jacobian, uniform, not "
                                 f"{attack.design!r}")
    info: dict[str, Any] = {"unknowns": k}
    if attack.design != "uniform":
        out = _run_jacobian(attack, oracle, table, rng, c, hidden)
        if not isinstance(out, str):
            return out
        info["design_note"] = f"no Jacobian design: {out}"
    budget = attack.n_queries or oracle.ledger.remaining or k
    m = max(budget - table.n, 0)
    if m:
        table.ask(space.sample_encoded(m, rng))
    X, P = table.data()
    flat, loss, tries = fit_mlp(X, P, hidden, attack.activation, attack.restarts, rng,
                                table.min_probability)
    model = make_mlp(flat, len(lo), hidden, np.asarray(table.classes), attack.activation)
    info.update({"queries_asked": len(X), "loss_per_point": loss, "restarts": tries,
                 "design": "uniform", "solver": "L-BFGS on centred log-probabilities"})
    return model, bool(loss < 1e-18 and len(X) * max(c - 1, 1) >= k), info


def _run_jacobian(attack: EquationSolving, oracle: Oracle, table: Table,
                  rng: np.random.Generator, c: int,
                  hidden: int) -> tuple[Any, bool, dict[str, Any]] | str:
    """The Jacobian design's result, or why it does not apply."""
    from stealml.attacks.equations.jacobian import Probes, design_cost, extract

    space = oracle.space
    lo, hi = space.encoded_bounds()
    free = hi > lo
    why = None
    n_values = 3 * hidden
    cost = design_cost(int(free.sum()), c, hidden, n_values)
    budget = attack.n_queries or oracle.ledger.remaining
    if c < 3:
        why = "two classes give one Jacobian row per point"
    elif attack.activation not in ("tanh", "logistic"):
        why = f"{attack.activation} units have no smooth derivative profile"
    elif budget is not None and budget < cost:
        why = f"the design needs {cost} queries, the budget allows {budget}"
    if why is not None:
        if attack.design == "jacobian":
            raise ConfigurationError(f"the Jacobian design cannot run: {why}")
        return why
    probes = Probes(table, lo, hi)
    points = space.sample_encoded(max(hidden, math.ceil(hidden / (c - 1)) + 1), rng)
    try:
        out = extract(probes, points, space.sample_encoded(n_values, rng), free, c, hidden,
                      attack.activation, attack.restarts, rng)
    except InvalidInputError:
        # the API takes raw feature values only: nudged one-hot columns are no input
        # (refused before any charge); valid rows remain
        if attack.design == "jacobian":
            raise
        return "the API refuses points off its raw inputs"
    if out is None:
        return "the budget ran out"
    flat, facts = out
    model = make_mlp(flat, len(lo), hidden, np.asarray(table.classes), attack.activation)
    # consistent (every answer fitted) and the Jacobians' rank is h: determined
    complete = facts["value_rms"] < 1e-5 and facts["jacobian_gap"] < 1e-3
    info = {"unknowns": attack.n_unknowns(len(lo), c), "queries_asked": table.n,
            "design": "jacobian", "solver": "Jacobian subspace, tensor decomposition, "
            "Levenberg-Marquardt", **facts}
    return model, bool(complete), info

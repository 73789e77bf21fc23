"""Functionally-equivalent extraction of ReLU networks (``functionally-equivalent``).

A ReLU network answering logits, or probabilities (whose log-ratios are the logits up to
the softmax shift), is piecewise linear. Along random lines through the input space the
attack finds every point where the answers bend (:mod:`._relu_lines`); at each new one the
jump of the Jacobian gives the neuron's weight row up to scale, and the point gives its
bias. A least-squares solve over points with known activation patterns then refines every
hidden weight to machine precision, yields the output layer, and settles every neuron's
sign through a subset sum (:mod:`._relu_solve`). Over wide inputs (more than ``WIDE``
columns, e.g. 784-128-10) that refinement would cost 2(d + 1) queries per neuron and
h least-squares solves of that width: there one Jacobian per segment between corners
serves both corners, the signs come from the Jacobians and the output layer from the
jumps, refitted on a few points (:mod:`._relu_sweep`). The stolen model is a real
scikit-learn ``MLPClassifier`` (``MLPRegressor`` for a regressor) with the extracted
weights.

A network with two hidden layers is extracted layer by layer (:mod:`._relu_depth`): the
first layer from the planes its critical points share, the second from its neurons'
surfaces traced across those planes, the signs from the second layer's solutions and the
answers, then Gauss-Newton refinement of every parameter (:mod:`._relu_refine`).

The attack never stops on a count mismatch: with fewer neurons found than the
architecture has it keeps searching lines within its budget and ``max_lines``, then builds
the best network from what it found (``complete`` False, the counts in ``info``).

References: Carlini, Jagielski and Mironov, "Cryptanalytic Extraction of Neural Network
Models", CRYPTO 2020; Jagielski et al., "High Accuracy and High Fidelity Extraction of
Neural Networks", USENIX Security 2020, section 6 (functionally equivalent extraction);
Canales-Martinez et al., "Polynomial Time Cryptanalytic Extraction of Neural Network
Models", EUROCRYPT 2024 (sign recovery in deeper layers).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from stealml.attacks._relu_depth import exact, extract_two_layers
from stealml.attacks._relu_lines import (
    Line,
    OutOfBudget,
    Outputs,
    find_kinks,
    kink_normal,
    unsaturated,
)
from stealml.attacks._relu_model import build_deep_mlp, build_mlp, relu_architecture
from stealml.attacks._relu_solve import Layer, ball_points, global_fit, local_fit, solve_signs
from stealml.attacks._relu_sweep import sweep_one_layer
from stealml.attacks.base import Attack, Querier
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.oracles.base import Oracle, valid_rows_only
from stealml.random import RandomState, as_generator
from stealml.validation import check_positive_int

__all__ = ["FunctionallyEquivalent"]

WIDE = 200         # wider inputs: one hidden layer by Jacobians between corners (sweep)
SAME_PLANE = 1e-4  # a corner this close to a known hyperplane (scaled units) is that neuron
MARGIN = 1e-6      # fit points keep this far from every hyperplane


class FunctionallyEquivalent(Attack):
    """Extract a fully connected ReLU network to (near) machine precision.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, optional
        The target's hidden layers, as its documentation would state it (``stealml
        extract`` reads them from a local target); one or two layers. Without it one
        layer is assumed and the search stops after ``patience`` lines find no new
        neuron.
    max_lines : int
        Most random lines searched for critical points.
    patience : int
        Lines in a row without a new neuron after which the search ends when the
        architecture is unknown (five times as many while fewer neurons than the
        architecture has were found: a neuron dead on every line is never seen).
    extent : float
        Lines run this many half-diagonals of the input box either side of a random
        point inside it (neurons whose hyperplanes only graze the box are found too).
    batch_size : int, optional
        Most queries sent in one request.
    random_state : int or Generator, optional
        Seed of the lines and the fit points.

    References: Carlini, Jagielski and Mironov, CRYPTO 2020; Jagielski et al., USENIX
    Security 2020; Canales-Martinez et al., EUROCRYPT 2024.

    Examples
    --------
    >>> from sklearn.neural_network import MLPClassifier
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 4)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> target = MLPClassifier((8,), max_iter=300, random_state=0).fit(X, y)
    >>> result = FunctionallyEquivalent((8,), random_state=0).run(LocalOracle(target))
    >>> result.complete, result.info["neurons_found"]
    (True, [8])
    """

    name: ClassVar[str] = "functionally-equivalent"
    requires: ClassVar[frozenset[str]] = frozenset({"probabilities"})

    def __init__(self, hidden_layer_sizes: tuple[int, ...] | None = None,
                 max_lines: int = 400, patience: int = 8, extent: float = 1.5,
                 batch_size: int | None = None, random_state: RandomState = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_lines = max_lines
        self.patience = patience
        self.extent = extent
        self.batch_size = batch_size
        self.random_state = random_state

    def check_oracle(self, oracle: Oracle) -> None:
        if "values" not in oracle.reveals:  # a regressor's values are its raw output
            super().check_oracle(oracle)

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        sizes = list(self.hidden_layer_sizes or (n_columns,))
        outputs = 1 if (n_classes or 2) <= 2 else int(n_classes or 2)
        widths = [n_columns, *sizes, outputs]
        return sum((a + 1) * b for a, b in itertools.pairwise(widths))

    @classmethod
    def supports(cls, model: Any) -> bool:
        sizes = relu_architecture(model)
        return sizes is not None and len(sizes) in (1, 2)

    def _sizes(self) -> tuple[int, ...] | None:
        if self.hidden_layer_sizes is None:
            return None
        sizes = tuple(np.atleast_1d(self.hidden_layer_sizes).tolist())
        for s in sizes:
            check_positive_int(s, "hidden_layer_sizes")
        if len(sizes) > 2:
            raise ConfigurationError(
                f"functionally-equivalent extracts networks with one or two hidden layers; "
                f"hidden_layer_sizes {sizes} has {len(sizes)}")
        return sizes

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        sizes = self._sizes()
        max_lines = check_positive_int(self.max_lines, "max_lines")
        if not self.extent > 0:
            raise ConfigurationError(f"extent must be positive, not {self.extent}")
        if valid_rows_only(oracle):
            raise UnsupportedModelError(
                f"attack {self.name!r} searches for critical points along lines through "
                f"the model space, which move one-hot columns between 0 and 1, and this "
                f"API takes raw rows, whose categorical features have no such values: use "
                f"substitute-jacobian or substitute-knockoff")
        rng = as_generator(self.random_state)
        lo, hi = oracle.space.encoded_bounds()
        half = (hi - lo) / 2
        free = half > 0
        classes = oracle.classes
        kind = ("values" if "values" in oracle.reveals
                else "binary" if classes is not None and len(classes) == 2 else "softmax")
        f = Outputs(querier, kind, (hi + lo) / 2, half, free)
        if sizes is not None and len(sizes) == 2:
            return self._run_two(f, (sizes[0], sizes[1]), int(free.sum()), max_lines, rng,
                                 classes, kind)
        want = None if sizes is None else sizes[0]
        d = int(free.sum())
        if d > WIDE:
            layer, fit_info, exhausted, lines = sweep_one_layer(
                f, d, want, max_lines, self.patience, self.extent, rng)
            info: dict[str, Any] = {"output": kind, "lines": lines, "method": "sweep"}
        else:
            W, b, P, lines, exhausted = self._search(f, d, want, max_lines, rng)
            info = {"output": kind, "lines": lines, "method": "balls"}
            layer, fit_info = self._fit(f, W, b, P, rng) if len(W) else (None, {})
        info.update(fit_info)
        n_out = 1 if kind != "softmax" else len(classes)  # type: ignore[arg-type]
        h = want if want is not None else (0 if layer is None else len(layer.W))
        model, found = build_mlp(layer, h, d, n_out, f, classes, kind)
        info.update(neurons_found=[found], neurons_expected=[h], saturated=f.saturated)
        exact = fit_info.get("fit_residual", np.inf) <= 1e-8 * fit_info.get("output_scale", 0)
        complete = not exhausted and exact and fit_info.get("signs_consistent", False)
        if found != h:
            why = ("the budget ran out" if exhausted else
                   "a neuron never seen bending on any line is dead there")
            info["warning"] = (f"found {found} of {h} first-layer neurons ({why}); the "
                               "model keeps what was found" +
                               (" and answers exactly on the fit points" if exact else ""))
        return model, complete, info

    def _search(self, f: Outputs, d: int, want: int | None, max_lines: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int,
                                                   bool]:
        """Hyperplanes (unit rows, biases) of the neurons found along random lines, a
        critical point of each, the lines searched and whether the budget ran out."""
        W, b, P = np.zeros((0, d)), np.zeros(0), np.zeros((0, d))
        quiet, lines = 0, 0
        try:
            while lines < max_lines:
                if want is not None and len(W) >= want:
                    break
                if quiet >= self.patience * (1 if want is None else 5):
                    break
                left = f.querier.oracle.ledger.remaining
                if left is not None and left < _fit_cost(len(W) + 1, d) + 50 * d:
                    return W, b, P, lines, True  # keep the rest of the budget to fit
                lines += 1
                r = rng.normal(size=d)
                r /= np.linalg.norm(r)
                reach = self.extent * math.sqrt(d)
                centre = rng.uniform(-1, 1, d)
                n_before = len(W)
                for line in unsaturated(f, Line(centre - reach * r, 2 * reach * r)):
                    ts = find_kinks(f, line)
                    W, b, P = self._new_neurons(f, line, ts, W, b, P)
                quiet = 0 if len(W) > n_before else quiet + 1
        except OutOfBudget:
            return W, b, P, lines, True
        return W, b, P, lines, False

    def _run_two(self, f: Outputs, sizes: tuple[int, int], d: int, max_lines: int,
                 rng: np.random.Generator, classes: np.ndarray | None,
                 kind: str) -> tuple[Any, bool, dict[str, Any]]:
        n_out = 1 if kind != "softmax" else len(classes)  # type: ignore[arg-type]
        net, info, exhausted = extract_two_layers(f, sizes, d, n_out, max_lines,
                                                  self.patience, self.extent, rng)
        model, found = build_deep_mlp(net, sizes, d, n_out, f, classes, kind)
        info.update(output=kind, neurons_in_model=found, saturated=f.saturated)
        complete = not exhausted and exact(info) and info.get("signs_consistent", False)
        if info["neurons_found"] != list(sizes):
            info["warning"] = (
                f"found {info['neurons_found']} of {list(sizes)} neurons per layer "
                "(a neuron that never bends the answers in the box is dead or always active "
                "there; a linear stand-in replaces an always-active one)" +
                ("; the budget ran out" if exhausted else ""))
        return model, complete, info

    @staticmethod
    def _new_neurons(f: Outputs, line: Line, ts: list[float], W: np.ndarray,
                     b: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, ...]:
        edges = np.concatenate([[0.0], ts, [1.0]])
        for k, t in enumerate(ts):
            y = line.at(np.array([t]))[0]
            if len(W) and np.min(np.abs(W @ y + b)) < SAME_PLANE:
                continue
            found = kink_normal(f, line, t, min(t - edges[k], edges[k + 2] - t))
            if found is None:
                continue
            y, w = found
            if len(W) and np.min(np.abs(W @ y + b)) < SAME_PLANE:
                continue
            W, b, P = np.vstack([W, w]), np.append(b, -w @ y), np.vstack([P, y])
        return W, b, P

    def _fit(self, f: Outputs, W: np.ndarray, b: np.ndarray, P: np.ndarray,
             rng: np.random.Generator) -> tuple[Layer, dict[str, Any]]:
        """The network from its hyperplanes: each neuron refined in a ball about its
        plane, signs from a global fit with a linear term, then the output layer."""
        h, d = W.shape
        m = _ball_size(d)
        balls = ball_points(W, b, P, m, rng)
        n = _fit_cost(h, d) - h * m
        Y = np.vstack([*balls, rng.uniform(-1, 1, (n, d))])
        try:
            F = f(Y)
        except OutOfBudget:
            Y, F = f.partial
        local_resid = 0.0
        if len(Y) >= h * m:  # every ball was bought: refine each neuron
            W, b = W.copy(), b.copy()
            for i in range(h):
                Yi, Fi = Y[i * m:(i + 1) * m], F[i * m:(i + 1) * m]
                z = Yi @ W[i] + b[i]
                keep = np.isfinite(Fi).all(axis=1) & (np.abs(z) > MARGIN)
                # both sides needed (a logistic output may be saturated on one of them)
                if min((keep & (z > 0)).sum(), (keep & (z < 0)).sum()) > d + 1:
                    W[i], b[i], _, r = local_fit(Yi[keep], Fi[keep], W[i], b[i])
                    local_resid = max(local_resid, r)
        keep = np.isfinite(F).all(axis=1) & (np.min(np.abs(Y @ W.T + b), axis=1) > MARGIN)
        Y, F = Y[keep], F[keep]
        layer, beta, _ = global_fit(Y, F, W, b, linear=True)
        mu, consistent = solve_signs(layer.A, W, beta)
        flip = np.where(mu > 0.5, -1.0, 1.0)
        layer, _, resid = global_fit(Y, F, W * flip[:, None], b * flip, linear=False)
        return layer, {"fit_points": len(Y), "fit_residual": resid,
                       "local_fit_residual": local_resid,
                       "output_scale": float(1 + np.abs(F).max(initial=0.0)),
                       "signs_flipped": int(mu.sum()), "signs_consistent": consistent}


def _ball_size(d: int) -> int:
    return 2 * (d + 1) + 16


def _fit_cost(h: int, d: int) -> int:
    """Queries :meth:`FunctionallyEquivalent._fit` spends on ``h`` neurons."""
    return h * _ball_size(d) + 2 * (h + d + 1) + 16

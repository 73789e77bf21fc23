"""Precision refinement of an extracted ReLU network by Gauss-Newton on its answers.

With every activation pattern right, a ReLU network's output at a fixed input is a
polynomial in its parameters, and the answers at points away from every hyperplane pin
them down: Gauss-Newton (least squares on the Jacobian) converges to machine precision in
a few steps. Points closer to a hyperplane than ``margin`` (in units of the layer's
pre-activations, relative to their spread) are left out, since their pattern may differ.

References: Carlini, Jagielski and Mironov, CRYPTO 2020, section 4.5 (precision
refinement of the extracted weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = ["Network", "refine"]


@dataclass
class Network:
    """Hidden layers ``[(W, b), ...]`` (W of shape (out, in)), output weights ``A``
    (o, h) and biases ``c`` (o,), in scaled coordinates."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    A: np.ndarray
    c: np.ndarray

    def pre_activations(self, Y: np.ndarray) -> list[np.ndarray]:
        Z, H = [], Y
        for W, b in self.layers:
            Z.append(H @ W.T + b)
            H = np.maximum(Z[-1], 0.0)
        return Z

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        Z = self.pre_activations(Y)
        H = np.maximum(Z[-1], 0.0) if Z else Y
        return np.asarray(H @ self.A.T + self.c)

    def flat(self) -> np.ndarray:
        parts = [np.hstack([W, b[:, None]]).ravel() for W, b in self.layers]
        parts.append(np.hstack([self.A, self.c[:, None]]).ravel())
        return np.concatenate(parts)

    def unflat(self, theta: np.ndarray) -> Network:
        layers, k = [], 0
        for W, _ in self.layers:
            size = W.size + len(W)
            Wb = theta[k:k + size].reshape(len(W), -1)
            layers.append((Wb[:, :-1], Wb[:, -1]))
            k += size
        Ac = theta[k:].reshape(len(self.A), -1)
        return Network(layers, Ac[:, :-1], Ac[:, -1])

    def jacobian(self, Y: np.ndarray) -> np.ndarray:
        """d output / d flat parameters, shape (n, o, p)."""
        n, o = len(Y), len(self.A)
        Z = self.pre_activations(Y)
        inputs = [Y] + [np.maximum(z, 0.0) for z in Z]
        ones = np.ones((n, 1))
        blocks = []
        # delta: d output / d pre-activation of the current layer, (n, o, h)
        delta = np.broadcast_to(np.eye(o), (n, o, o))
        blocks.append(np.einsum("noj,nk->nojk", delta,
                                np.hstack([inputs[-1], ones])).reshape(n, o, -1))
        back = self.A
        for layer in range(len(self.layers) - 1, -1, -1):
            delta = np.einsum("noj,jh->noh", delta, back) * (Z[layer] > 0)[:, None, :]
            blocks.append(np.einsum("noj,nk->nojk", delta,
                                    np.hstack([inputs[layer], ones])).reshape(n, o, -1))
            back = self.layers[layer][0]
        return np.concatenate(blocks[::-1], axis=2)


def _clear(net: Network, Y: np.ndarray, margin: float) -> np.ndarray:
    keep = np.ones(len(Y), dtype=bool)
    for Z in net.pre_activations(Y):
        spread = np.maximum(np.abs(Z).max(axis=0, initial=0.0), 1e-300)
        keep &= (np.abs(Z) / spread > margin).all(axis=1)
    return keep


def refine(net: Network, Y: np.ndarray, F: np.ndarray, centred: bool,
           margin: float = 1e-5, steps: int = 8) -> tuple[Network, float]:
    """``net`` refined on the answers ``F`` at ``Y`` (centred across outputs when the
    answers are softmax log-probabilities); returns it and the largest residual on the
    points clear of every hyperplane."""

    def residual(candidate: Network, keep: np.ndarray) -> np.ndarray:
        R = candidate(Y[keep]) - F[keep]
        return R - R.mean(axis=1, keepdims=True) if centred else R

    best, best_err = net, np.inf
    for _ in range(steps + 1):
        keep = _clear(net, Y, margin)
        R = residual(net, keep)
        err = float(np.abs(R).max(initial=0.0))
        if not err < best_err:
            break  # no better than the best step: done
        best, best_err = net, err
        if not keep.any() or err <= 1e-14 * (1 + float(np.abs(F).max())):
            break
        J = net.jacobian(Y[keep])
        if centred:
            J = J - J.mean(axis=1, keepdims=True)
        # directions the answers barely see (units never active on the points, scale
        # symmetries) are left alone: truncated least squares
        step, *_ = scipy.linalg.lstsq(J.reshape(-1, J.shape[2]), R.ravel(), cond=1e-10,
                                      lapack_driver="gelsd", check_finite=False)
        net = net.unflat(net.flat() - step)
    return best, best_err

"""ReLU networks as scikit-learn estimators: which targets are ReLU MLPs, and the stolen
``MLPClassifier`` / ``MLPRegressor`` built from extracted weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.linalg import block_diag
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer

if TYPE_CHECKING:
    from stealml.attacks._relu_lines import Outputs
    from stealml.attacks._relu_refine import Network
    from stealml.attacks._relu_solve import Layer

__all__ = ["average_mlps", "build_deep_mlp", "build_mlp", "make_relu_mlp", "relu_architecture"]


def relu_architecture(model: Any) -> tuple[int, ...] | None:
    """The hidden layer sizes of a ReLU MLP target, or None if it is not one."""
    if isinstance(model, (MLPClassifier, MLPRegressor)) and model.activation == "relu":
        return tuple(int(s) for s in np.atleast_1d(model.hidden_layer_sizes))
    sizes = getattr(model, "relu_hidden_layer_sizes", None)  # e.g. a wrapped torch MLP
    return tuple(int(s) for s in sizes) if sizes is not None else None


def make_relu_mlp(coefs: list[np.ndarray], intercepts: list[np.ndarray],
                  classes: np.ndarray | None) -> MLPClassifier | MLPRegressor:
    """A fitted ReLU MLP with the given weights: a classifier when ``classes`` is given
    (one logistic output for two classes, else softmax), else a regressor."""
    hidden = tuple(int(w.shape[1]) for w in coefs[:-1])
    model: MLPClassifier | MLPRegressor
    if classes is None:
        model = MLPRegressor(hidden_layer_sizes=hidden, activation="relu")
        model.out_activation_ = "identity"
    else:
        model = MLPClassifier(hidden_layer_sizes=hidden, activation="relu")
        model.out_activation_ = "logistic" if len(classes) == 2 else "softmax"
        model.classes_ = np.asarray(classes)
        model._label_binarizer = LabelBinarizer().fit(classes)
    model.coefs_ = [np.array(w, dtype=float) for w in coefs]
    model.intercepts_ = [np.array(c, dtype=float) for c in intercepts]
    model.n_layers_ = len(coefs) + 1
    model.n_outputs_ = int(coefs[-1].shape[1])
    model.n_features_in_ = int(coefs[0].shape[0])
    model.n_iter_ = 0
    return model


def average_mlps(models: list[MLPClassifier]) -> MLPClassifier:
    """One ReLU ``MLPClassifier`` whose logits are the mean of the members' logits.

    The members' hidden layers sit side by side (the first layer's weights joined, deeper
    layers' weights block-diagonal) and the output weights and biases are averaged, so
    the network computes exactly ``mean_i z_i(x)``: an ensemble is still one MLP, with
    the members' hidden units added up. The members must share their classes, depth and
    activation (ReLU).
    """
    first, k = models[0], len(models)
    coefs = [np.hstack([m.coefs_[0] for m in models])]
    coefs += [block_diag(*(m.coefs_[i] for m in models))
              for i in range(1, len(first.coefs_) - 1)]
    coefs.append(np.vstack([m.coefs_[-1] for m in models]) / k)
    intercepts = [np.concatenate([m.intercepts_[i] for m in models])
                  for i in range(len(first.intercepts_) - 1)]
    intercepts.append(np.mean([m.intercepts_[-1] for m in models], axis=0))
    model = make_relu_mlp(coefs, intercepts, first.classes_)
    assert isinstance(model, MLPClassifier)
    return model


def build_mlp(layer: Layer | None, h: int, d: int, n_out: int, f: Outputs,
              classes: np.ndarray | None, kind: str) -> tuple[Any, int]:
    """The stolen one-hidden-layer network with ``h`` hidden units in the target's input
    coordinates (neurons beyond ``h`` with the least output weight are dropped, missing
    ones are dead units), and the number of extracted neurons it holds."""
    W, b = np.zeros((0, d)), np.zeros(0)
    A, c = np.zeros((n_out, 0)), np.zeros(n_out)
    if layer is not None:
        W, b, A, c = layer.W, layer.b, layer.A, layer.c
    keep = np.argsort(-np.linalg.norm(A, axis=0), kind="stable")[:h]
    W, b, A = W[keep], b[keep], A[:, keep]
    found = len(W)
    pad = h - found
    W = np.vstack([W, np.zeros((pad, d))])
    b, A = np.append(b, np.zeros(pad)), np.hstack([A, np.zeros((n_out, pad))])
    scale = f.half_width[f.free]
    Wx = np.zeros((h, len(f.centre)))
    Wx[:, f.free] = W / scale
    bx = b - W @ (f.centre[f.free] / scale)
    model = make_relu_mlp([Wx.T, A.T], [bx, c], None if kind == "values" else classes)
    return model, found


def build_deep_mlp(net: Network | None, sizes: tuple[int, ...], d: int, n_out: int,
                   f: Outputs, classes: np.ndarray | None, kind: str) -> tuple[Any, list[int]]:
    """The stolen network with the architecture ``sizes``, in the target's input
    coordinates: in each hidden layer the neurons beyond its size with the least outgoing
    weight are dropped and missing ones are dead units. Also returns how many extracted
    neurons each layer holds."""
    layers = [] if net is None else [(W.copy(), b.copy()) for W, b in net.layers]
    A = np.zeros((n_out, 0)) if net is None else net.A.copy()
    c = np.zeros(n_out) if net is None else net.c.copy()
    widths = [d]
    found = []
    for k, size in enumerate(sizes):
        if k >= len(layers):
            layers.append((np.zeros((0, widths[-1])), np.zeros(0)))
        W, b = layers[k]
        nxt = A if k == len(sizes) - 1 else layers[k + 1][0]
        keep = np.sort(np.argsort(-np.linalg.norm(nxt, axis=0), kind="stable")[:size])
        W, b, nxt = W[keep], b[keep], nxt[:, keep]
        found.append(len(W))
        pad = size - len(W)
        W = np.vstack([W, np.zeros((pad, W.shape[1]))])
        b, nxt = np.append(b, np.zeros(pad)), np.hstack([nxt, np.zeros((len(nxt), pad))])
        layers[k] = (W, b)
        if k == len(sizes) - 1:
            A = nxt
        else:
            layers[k + 1] = (nxt, layers[k + 1][1])
        widths.append(size)
    scale = f.half_width[f.free]
    W, b = layers[0]
    Wx = np.zeros((len(W), len(f.centre)))
    Wx[:, f.free] = W / scale
    layers[0] = (Wx, b - W @ (f.centre[f.free] / scale))
    coefs = [W.T for W, _ in layers] + [A.T]
    intercepts = [b for _, b in layers] + [c]
    model = make_relu_mlp(coefs, intercepts, None if kind == "values" else classes)
    return model, found

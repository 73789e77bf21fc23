"""One hidden layer over a wide input (e.g. 784-128-10), from gradients between corners.

Along a line through the input space the answers are linear between consecutive corners,
so one Jacobian per segment serves both corners that bound it: the Jacobian's jump across
a corner is u w^T (u the neuron's output weights times its scale, w its unit weight row),
whatever the neuron's sign. Each Jacobian is measured by forward differences (d + 1
queries, all the segments of a line in a few batched requests); the jump's top singular
pair gives w and u, and its second singular value checks that only one neuron bends there.
A coordinate step that crossed a plane known by then is measured again with a step short
of every plane. With all the planes, every measured Jacobian is a combination of the
jumps, sum_i c_i u_i w_i^T with c_i = 1[z_i > 0] - mu_i (mu_i = 1 when the sign was guessed
wrong): one least-squares solve per Jacobian gives every sign, and the output layer is the
jumps themselves, refitted (with the output bias) by least squares on a few uniform points.

This spends about 2(d + 1) queries per neuron and no solve larger than (outputs x d) by h,
where refining each neuron in a ball about its hyperplane (:mod:`._relu_solve`) spends
2(d + 1) + 16 more per neuron and an h-fold least squares of that width.

References: Carlini, Jagielski and Mironov, "Cryptanalytic Extraction of Neural Network
Models", CRYPTO 2020, sections 4.2-4.5; Jagielski et al., "High Accuracy and High Fidelity
Extraction of Neural Networks", USENIX Security 2020, section 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from stealml.attacks._relu_lines import Line, OutOfBudget, Outputs, find_kinks, unsaturated
from stealml.attacks._relu_solve import Layer

__all__ = ["sweep_one_layer"]

SAME_PLANE = 1e-4   # a corner this close to a known hyperplane (scaled units) is that neuron
RANK_ONE = 1e-5     # largest second / first singular value of a clean jump
MIN_ROOM = 1e-3     # segments shorter than this (scaled units) either side: skip the corner
MAX_STEP = 1e-3     # largest forward-difference step (scaled units)
ROWS_PER_CALL = 20_000
POLISH_MAX = 0  # networks with at most this many parameters are polished (Gauss-Newton)


@dataclass
class _Jacobians:
    """Forward-difference Jacobians at base points: ``Y`` (n, d), ``step`` (n,), the
    answers there ``F0`` (n, o) and the Jacobians ``G`` (n, o, d)."""

    Y: list[np.ndarray] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    F0: list[np.ndarray] = field(default_factory=list)
    G: list[np.ndarray] = field(default_factory=list)

    def measure(self, f: Outputs, Y: np.ndarray, steps: np.ndarray) -> list[int]:
        """Measure at the rows of ``Y``; returns their indices (NaN ones are dropped)."""
        n, d = Y.shape
        per = max(1, ROWS_PER_CALL // (d + 1))
        idx: list[int] = []
        for start in range(0, n, per):
            Yc, sc = Y[start:start + per], steps[start:start + per]
            Q = np.concatenate([np.vstack([y, y + s * np.eye(d)]) for y, s in zip(Yc, sc,
                                                                                 strict=True)])
            F = f(Q).reshape(len(Yc), d + 1, -1)
            for y, s, Fk in zip(Yc, sc, F, strict=True):
                if not np.isfinite(Fk).all():
                    continue
                idx.append(len(self.Y))
                self.Y.append(y)
                self.step.append(float(s))
                self.F0.append(Fk[0])
                self.G.append(((Fk[1:] - Fk[0]) / s).T)
        return idx

    def repair(self, f: Outputs, W: np.ndarray, b: np.ndarray, which: list[int]) -> int:
        """Measure again the columns of the Jacobians ``which`` whose coordinate step
        crossed one of the planes (W, b); returns how many were measured again."""
        if not len(W):
            return 0
        redo: list[tuple[int, int, float]] = []
        for k in which:
            z = W @ self.Y[k] + b
            moved = z[:, None] + self.step[k] * W
            crossed = np.flatnonzero((np.sign(moved) != np.sign(z)[:, None]).any(axis=0))
            for col in crossed.tolist():
                with np.errstate(divide="ignore"):
                    room = np.abs(z) / np.abs(W[:, col])
                safe = 0.3 * float(room.min())
                if safe > 1e-12:
                    redo.append((k, col, min(safe, self.step[k])))
        if not redo:
            return 0
        Q = np.array([self.Y[i] for i, _, _ in redo])
        Q[np.arange(len(redo)), [j for _, j, _ in redo]] += [s for _, _, s in redo]
        F = f(Q)
        for (i, j, s), Fr in zip(redo, F, strict=True):
            if np.isfinite(Fr).all():
                self.G[i][:, j] = (Fr - self.F0[i]) / s
        return len(redo)


def _jump(Gl: np.ndarray, Gr: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  float]:
    """Unit row w (with w . v > 0), output gains u and the rank-one defect of Gr - Gl."""
    U, S, Vt = np.linalg.svd(Gr - Gl, full_matrices=False)
    w, u = Vt[0], U[:, 0] * S[0]
    if w @ v < 0:
        w, u = -w, -u
    defect = float(S[1] / S[0]) if len(S) > 1 and S[0] > 0 else (0.0 if S[0] > 0 else 1.0)
    return w, u, defect


def sweep_one_layer(f: Outputs, d: int, want: int | None, max_lines: int, patience: int,
                    extent: float, rng: np.random.Generator,
                    ) -> tuple[Layer | None, dict[str, Any], bool, int]:
    """The one-hidden-layer network behind ``f``; returns the layer (None when no neuron
    was found), what to report, whether the budget ran out and the lines searched."""
    jac = _Jacobians()
    W, b, U = np.zeros((0, d)), np.zeros(0), np.zeros((0, 0))
    quiet, lines, exhausted, skipped = 0, 0, False, 0
    try:
        while lines < max_lines and (want is None or len(W) < want):
            if quiet >= patience * (1 if want is None else 5):
                break
            left = f.querier.oracle.ledger.remaining
            if left is not None and left < 4 * (d + 1) + 4 * (len(W) + 1) + 100:
                exhausted = True
                break
            lines += 1
            r = rng.normal(size=d)
            r /= np.linalg.norm(r)
            reach = extent * math.sqrt(d)
            centre = rng.uniform(-1, 1, d)
            n_before = len(W)
            for line in unsaturated(f, Line(centre - reach * r, 2 * reach * r)):
                W, b, U, s = _sweep_line(f, line, jac, W, b, U)
                skipped += s
            quiet = 0 if len(W) > n_before else quiet + 1
    except OutOfBudget:
        exhausted = True
    info: dict[str, Any] = {"jacobians": len(jac.Y), "corners_skipped": skipped}
    if not len(W):
        return None, info, exhausted, lines
    try:
        jac.repair(f, W, b, list(range(len(jac.Y))))
        layer, fit = _output_layer(f, jac, W, b, U, rng)
    except OutOfBudget:
        return None, info, True, lines
    info.update(fit)
    return layer, info, exhausted, lines


def _sweep_line(f: Outputs, line: Line, jac: _Jacobians, W: np.ndarray, b: np.ndarray,
                U: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The new neurons whose corners lie on ``line``, added to (W, b, U)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        known = -(W @ line.p + b) / (W @ line.v)
    known = np.sort(known[np.isfinite(known) & (known > 0) & (known < 1)])
    found = np.array(find_kinks(f, line, known=known))
    ts = np.sort(np.concatenate([found, known]))  # every corner: the segments between
    if not len(found):
        return W, b, U, 0
    P = line.at(ts)
    new = np.isin(ts, found)
    if len(W):
        new &= np.min(np.abs(P @ W.T + b), axis=1) >= SAME_PLANE
    edges = np.concatenate([[0.0], ts, [1.0]])
    length = float(np.linalg.norm(line.v))
    half = np.diff(edges) / 2 * length  # half-length of each segment, scaled units
    room = np.minimum(half[:-1], half[1:])
    skipped = int((new & (room < MIN_ROOM)).sum())
    new &= room >= MIN_ROOM
    if not new.any():
        return W, b, U, skipped
    chosen = _affordable(f, np.flatnonzero(new), len(W), len(line.p))
    skipped += int(new.sum()) - len(chosen)
    if not len(chosen):
        return W, b, U, skipped
    new[:] = False
    new[chosen] = True
    segs = np.unique(np.concatenate([chosen, chosen + 1]))
    mids = (edges[segs] + edges[segs + 1]) / 2
    steps = np.minimum(MAX_STEP, half[segs] / 20)
    idx = jac.measure(f, line.at(mids), steps)
    at = dict(zip(segs[:len(idx)].tolist(), idx, strict=True)) if len(idx) == len(segs) else {}
    if not at:  # some Jacobian saturated: map what came back by base point
        ys = line.at(mids)
        for k in idx:
            hit = np.flatnonzero(np.all(ys == jac.Y[k], axis=1))
            if len(hit):
                at[int(segs[hit[0]])] = k
    corners = [int(k) for k in np.flatnonzero(new) if k in at and k + 1 in at]
    # planes of the corners as first measured, to find the coordinate steps that crossed
    # one of them (or a known plane), then measured again
    trial = [_jump(jac.G[at[k]], jac.G[at[k + 1]], line.v)[0] for k in corners]
    Wt = np.vstack([W, *trial]) if trial else W
    bt = np.concatenate([b, [-w @ P[k] for w, k in zip(trial, corners, strict=True)]])
    jac.repair(f, Wt, bt, sorted(at.values()))
    rows, biases, gains = [], [], []
    sharp = _sharpen(f, line, ts[corners], room[corners] / length)
    for k, t in zip(corners, sharp, strict=True):
        w, u, defect = _jump(jac.G[at[k]], jac.G[at[k + 1]], line.v)
        if defect > RANK_ONE:
            skipped += 1
            continue
        rows.append(w)
        biases.append(-float(w @ line.at(np.array([t]))[0]))
        gains.append(u)
    if not rows:
        return W, b, U, skipped
    U = np.vstack([U.reshape(len(W), -1), gains]) if len(W) else np.array(gains)
    return np.vstack([W, rows]), np.concatenate([b, biases]), U, skipped


def _affordable(f: Outputs, corners: np.ndarray, known: int, d: int) -> np.ndarray:
    """The corners (in line order) whose Jacobians the budget pays for, keeping enough
    for the output layer and the corners' sharpening."""
    left = f.querier.oracle.ledger.remaining
    if left is None:
        return corners
    out: list[int] = []
    segs: set[int] = set()
    for k in corners.tolist():
        extra = len({k, k + 1} - segs)
        n = len(out) + 1
        cost = (len(segs) + extra) * (d + 1) + 4 * n + 2 * (known + n + 1) + 50
        if cost > left:
            break
        out.append(k)
        segs |= {k, k + 1}
    return np.array(out, dtype=int)


def _sharpen(f: Outputs, line: Line, ts: np.ndarray, room: np.ndarray) -> np.ndarray:
    """The corners ``ts`` sharpened, each the meeting point of the lines through two
    points on either side of it (``room``: the distance in t to the nearest other
    corner); the points are far apart, so the answers' rounding barely moves it."""
    if not len(ts):
        return ts
    r = 0.4 * room
    T = np.column_stack([ts - 2 * r, ts - r, ts + r, ts + 2 * r])
    g = f(line.at(T.ravel())).reshape(len(ts), 4, -1)
    out = ts.copy()
    for k in range(len(ts)):
        if not np.isfinite(g[k]).all():
            continue
        sa, sb = (g[k, 1] - g[k, 0]) / r[k], (g[k, 3] - g[k, 2]) / r[k]
        ds = sa - sb
        j = int(np.argmax(np.abs(ds)))
        if ds[j] == 0:
            continue
        new = (g[k, 2, j] - g[k, 1, j] + sa[j] * T[k, 1] - sb[j] * T[k, 2]) / ds[j]
        if abs(new - ts[k]) < r[k]:
            out[k] = new
    return out


def _output_layer(f: Outputs, jac: _Jacobians, W: np.ndarray, b: np.ndarray,
                  U: np.ndarray, rng: np.random.Generator) -> tuple[Layer, dict[str, Any]]:
    """Signs from the measured Jacobians, then the output layer by least squares."""
    h, d = W.shape
    o = U.shape[1]
    M = np.stack([np.outer(U[i], W[i]).ravel() for i in range(h)], axis=1)  # (o d, h)
    Y = np.array(jac.Y)
    G = np.array(jac.G).reshape(len(Y), -1)
    C, *_ = scipy.linalg.lstsq(M, G.T, lapack_driver="gelsd", check_finite=False)
    mu_all = (Y @ W.T + b > 0).astype(float) - C.T  # 0 or 1 at every point
    mu = (np.median(mu_all, axis=0) > 0.5).astype(float)
    sign_spread = float(np.abs(mu_all - mu).max())
    s = 1.0 - 2.0 * mu
    Ws, bs = W * s[:, None], b * s
    n = 2 * (h + 1)
    Yu = rng.uniform(-1, 1, (n, d))
    Fu = f(Yu)
    keep = np.isfinite(Fu).all(axis=1)
    Yfit = np.vstack([Y, Yu[keep]])
    Ffit = np.vstack([np.array(jac.F0), Fu[keep]])
    H = np.hstack([np.maximum(Yfit @ Ws.T + bs, 0.0), np.ones((len(Yfit), 1))])
    coef, *_ = scipy.linalg.lstsq(H, Ffit, lapack_driver="gelsd", check_finite=False)
    resid = float(np.abs(H @ coef - Ffit).max())
    A, c = coef[:h].T, coef[h]
    gain_change = float(np.abs(A - U.T).max() / max(np.abs(U).max(), 1e-300))
    layer = Layer(Ws, bs, A, c)
    return layer, {"fit_points": len(Yfit), "fit_residual": resid,
                   "output_scale": float(1 + np.abs(Ffit).max(initial=0.0)),
                   "signs_flipped": int(mu.sum()), "sign_spread": sign_spread,
                   "signs_consistent": sign_spread < 0.25, "gain_refit": gain_change,
                   "outputs": o}


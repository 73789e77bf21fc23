"""The second hidden layer of a ReLU network, from the first layer's hyperplanes.

A first-layer neuron bends the answers on one whole hyperplane: every critical point on
it has the same normal (the Jacobian's jump is its weight row times region-dependent
output gains) and lies on the same plane; a plane met on two lines on which the answers
also bend at random points of it is a first-layer neuron (:class:`FirstLayer`). A
second-layer neuron j bends them where z_j(y) = sum_i alpha_i relu(s_i z_i(y)) + c_j
crosses zero: a hyperplane inside each region of first-layer activation patterns, bent
where it crosses a first-layer plane. :func:`trace` follows one such surface from a
critical point across first-layer planes (stepping along it to the next plane, just past
it, and finding the surface again on a short segment parallel to that plane), so that
every critical point it gathers belongs to the same neuron; its normal in region k is
that of sum_i alpha_i 1[z_i > 0] w_i + beta, written with the unsigned first-layer z_i,
where beta = -sum_i mu_i alpha_i w_i collects the neurons whose sign was guessed wrong.
:func:`solve_neuron` finds alpha, beta (and the gain of each point) by least squares;
the betas of all second-layer neurons then fix the first layer's signs by the same
subset sum as for one hidden layer (:func:`second_layer`).

References: Carlini, Jagielski and Mironov, "Cryptanalytic Extraction of Neural Network
Models", CRYPTO 2020, section 4.4 (deeper layers from critical points, given the layers
before); Canales-Martinez et al., "Polynomial Time Cryptanalytic Extraction of Neural
Network Models", EUROCRYPT 2024 (signs of non-contractive layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from stealml.attacks._relu_lines import Line, Outputs, find_kinks, kink_normal

__all__ = ["FirstLayer", "Neuron", "second_layer", "solve_neuron", "trace"]

PLANE_TOL = 1e-6   # a critical point this close (scaled units) to a plane lies on it
SPAN_TOL = 1e-5    # a continued surface's normal lies this close to span(n, w_i)


@dataclass
class _Plane:
    normal: np.ndarray
    points: list[np.ndarray]
    lines: set[int]
    rejected: bool = False
    verified: bool = False
    probed_at: int = 0

    @property
    def bias(self) -> float:
        return -float(np.mean([self.normal @ p for p in self.points]))


@dataclass
class FirstLayer:
    """Hyperplanes of the critical points seen, grouped. A plane met on ``support``
    different lines is a candidate; it is a first-layer neuron if the answers bend exactly
    on it at two of ``probes`` random points of it in the box (a flat piece of a
    second-layer surface ends where that surface bends)."""

    d: int
    support: int = 2
    probes: int = 4
    planes: list[_Plane] = field(default_factory=list)
    _cache: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, y: np.ndarray, n: np.ndarray, line: int) -> None:
        for p in self.planes:
            if p.rejected:
                continue
            c = float(p.normal @ n)
            if abs(c) > 1 - 1e-6 and abs(p.normal @ y + p.bias) < PLANE_TOL * 10:
                p.points.append(y)
                p.lines.add(line)
                self._cache = None
                return
        self.planes.append(_Plane(n.copy(), [y], {line}))

    def confirmed(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit rows and biases of the first-layer neurons found so far (the normal of
        each refitted through all of its critical points)."""
        if self._cache is not None:
            return self._cache
        W, b = [], []
        for p in self._kept():
            P = np.array(p.points)
            centre = P.mean(axis=0)
            _, _, Vt = np.linalg.svd(P - centre)
            w = Vt[-1] if len(P) > P.shape[1] else p.normal
            w = w if w @ p.normal > 0 else -w
            W.append(w)
            b.append(-float(w @ centre))
        self._cache = np.array(W).reshape(-1, self.d), np.array(b)
        return self._cache

    def _kept(self) -> list[_Plane]:
        return [p for p in self.planes if p.verified and not p.rejected]

    def verify(self, f: Outputs, rng: np.random.Generator) -> None:
        """Probe the candidates met on enough lines (again after three more lines)."""
        for p in self.planes:
            if (p.verified or p.rejected or len(p.lines) < self.support
                    or (p.probed_at and len(p.lines) < p.probed_at + 3)):
                continue
            p.probed_at = len(p.lines)
            p.verified = _probe(f, p.normal, p.bias, self.probes, rng) >= 2
            self._cache = None

    def points_of(self, i: int) -> list[np.ndarray]:
        """The critical points of confirmed plane ``i``."""
        return self._kept()[i].points

    def reject(self, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Drop confirmed planes (by index in :meth:`confirmed`) that turned out to be
        flat pieces of a second-layer surface; returns their critical points (with the
        plane's normal), seeds of that surface."""
        kept = self._kept()
        points: list[tuple[np.ndarray, np.ndarray]] = []
        for i in idx:
            kept[i].rejected = True
            points.extend((y, kept[i].normal) for y in kept[i].points)
        self._cache = None
        return points

    def on_plane(self, y: np.ndarray) -> bool:
        W, b = self.confirmed()
        return bool(len(W)) and float(np.min(np.abs(W @ y + b))) < PLANE_TOL * 10


def _probe(f: Outputs, w: np.ndarray, b: float, n: int, rng: np.random.Generator,
           delta: float = 0.01) -> int:
    """At how many of ``n`` random points of the plane w.y + b = 0 in the box the answers
    bend exactly on it.

    Across the plane at y, the answers at y + s w for s = -2, -1, 0, 1, 2 (times
    ``delta``) lie on two lines that meet at s = 0 when the plane is the only corner
    there: slopes over a span of ``delta`` (not the corner search's tiny steps) see a
    neuron whose output weights are 1e-5 of the others' (training's weight decay leaves
    such neurons) as clearly as any other. A flat piece of a second-layer surface does
    not bend the answers away from that surface.
    """
    d = len(w)
    Y = rng.uniform(-1, 1, (n, d))
    Y -= np.outer(Y @ w + b, w)
    s = delta * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    G = f((Y[:, None, :] + s[None, :, None] * w).reshape(-1, d)).reshape(n, 5, -1)
    hits = 0
    for g in G:
        if not np.isfinite(g).all():
            continue
        left, right = (g[1] - g[0]) / delta, (g[4] - g[3]) / delta
        jump = right - left
        j = int(np.argmax(np.abs(jump)))
        noise = 1e-10 * (1.0 + float(np.abs(g).max())) / delta  # slopes' rounding, 1e3 x
        if not abs(jump[j]) > noise:
            continue
        meet = (g[1][j] - left[j] * s[1] - g[3][j] + right[j] * s[3]) / jump[j]
        on_both = np.abs(g[2] - (g[1] + left * delta)).max() <= 1e-3 * abs(jump[j]) * delta
        if abs(meet) < 1e-6 and on_both:
            hits += 1
    return hits


@dataclass
class Neuron:
    """A second-layer neuron in unsigned first-layer terms:
    z(y) = alpha . relu(W y + b) + beta . y + gamma, scaled so that |grad z| = 1 at its
    first critical point. ``seen`` marks the first-layer neurons it was traced across
    (alpha_i is known only for those), ``residual`` is the solve's largest residual."""

    alpha: np.ndarray
    beta: np.ndarray
    gamma: float
    seen: np.ndarray
    residual: float
    traced: list[tuple[np.ndarray, np.ndarray]]

    @property
    def points(self) -> int:
        return len(self.traced)

    @property
    def Y(self) -> np.ndarray:
        return np.array([y for y, _ in self.traced])

    def same(self, other: Neuron, W: np.ndarray, b: np.ndarray) -> bool:
        """Whether two traced neurons are one: alpha equal up to scale where both were
        traced across at least three first-layer neurons, or a traced point of one on
        the other's surface."""
        if any(self.holds(W, b, y, n) for y, n in other.traced) or any(
                other.holds(W, b, y, n) for y, n in self.traced):
            return True
        both = self.seen & other.seen
        if both.sum() < 3:
            return False
        a, b = self.alpha[both], other.alpha[both]
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if not (na > 0 and nb > 0):
            return False
        a, b = a / na, b / nb
        return bool(min(np.abs(a - b).max(), np.abs(a + b).max()) < 1e-6)

    def value(self, W: np.ndarray, b: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.maximum(Y @ W.T + b, 0.0) @ self.alpha + Y @ self.beta + self.gamma

    def gradient(self, W: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(((W @ y + b > 0) * self.alpha) @ W + self.beta)

    def holds(self, W: np.ndarray, b: np.ndarray, y: np.ndarray, n: np.ndarray) -> bool:
        """Whether a critical point (y, normal n) lies on this neuron's surface."""
        g = self.gradient(W, b, y)
        norm = float(np.linalg.norm(g))
        if not norm > 0:
            return False
        return (abs(float(self.value(W, b, y[None, :])[0])) < 1e-5 * norm
                and abs(float(g @ n)) > norm * (1 - 1e-5))


def solve_neuron(points: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray,
                 b: np.ndarray) -> Neuron:
    """alpha, beta and each point's gain t_k from sum_i alpha_i 1[z_i(y_k) > 0] w_i + beta
    = t_k n_k over the traced points (t_0 = 1), by least squares; gamma puts every point
    on the surface. A first-layer neuron never crossed keeps alpha_i = 0: what it adds
    (if it is active there) is constant over the points and lands in beta."""
    h, d = W.shape
    K = len(points)
    Y = np.array([p for p, _ in points])
    N = np.array([n for _, n in points])
    on = (Y @ W.T + b > 0).astype(float)
    seen = (on.max(axis=0) > 0) & (on.min(axis=0) < 1)
    cols = np.flatnonzero(seen)
    s = len(cols)
    M = np.zeros((K * d, s + d + K - 1))
    rhs = np.zeros(K * d)
    for k in range(K):
        rows = slice(k * d, (k + 1) * d)
        M[rows, :s] = (on[k, cols][:, None] * W[cols]).T
        M[rows, s:s + d] = np.eye(d)
        if k == 0:
            rhs[rows] = N[0]
        else:
            M[rows, s + d + k - 1] = -N[k]
    sol, *_ = scipy.linalg.lstsq(M, rhs, lapack_driver="gelsd", check_finite=False)
    residual = float(np.max(np.abs(M @ sol - rhs)))
    alpha = np.zeros(h)
    alpha[cols], beta = sol[:s], sol[s:s + d]
    gamma = -float(np.mean(np.maximum(Y @ W.T + b, 0.0) @ alpha + Y @ beta))
    return Neuron(alpha, beta, gamma, seen, residual, list(points))


def second_layer(W: np.ndarray, b: np.ndarray, neurons: list[Neuron],
                 rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool,
                                              np.ndarray]:
    """The first layer's signs (+1 / -1), the second layer's rows and biases over the
    signed first layer, whether the signs fit every neuron, and which weights are
    unknown (first-layer neurons never crossed and inactive where the neuron was traced).

    A wrongly signed first-layer neuron i (mu_i = 1) adds -alpha_i w_i to every
    neuron's beta; first-layer neurons a neuron was never traced across add unknown
    multiples of their w_i, which are projected out. The least-squares mu is rounded.
    """
    h, d = W.shape
    if not neurons:
        return np.ones(h), np.zeros((0, h)), np.zeros(0), False, np.zeros((0, h), dtype=bool)
    blocks, targets, projectors = [], [], []
    for u in neurons:
        U = W[~u.seen].T
        Q = np.linalg.qr(U)[0] if U.shape[1] else np.zeros((d, 0))
        P = np.eye(d) - Q @ Q.T
        projectors.append(P)
        blocks.append(P @ (u.alpha[:, None] * W).T)
        targets.append(-P @ u.beta)
    A, t = np.vstack(blocks), np.concatenate(targets)
    sol, *_ = scipy.linalg.lstsq(A, t, lapack_driver="gelsd", check_finite=False)
    mu = (sol > 0.5).astype(float)
    scale = max(float(np.abs(A).max(initial=0.0)), float(np.abs(t).max(initial=0.0)), 1e-300)
    consistent = bool(np.abs(A @ mu - t).max(initial=0.0) <= rtol * scale * 10)
    s = np.where(mu > 0.5, -1.0, 1.0)
    Ws, bs = W * s[:, None], b * s
    V = np.zeros((len(neurons), h))
    c = np.zeros(len(neurons))
    unknown = np.zeros((len(neurons), h), dtype=bool)
    for j, u in enumerate(neurons):
        V[j] = u.alpha
        # what the never-crossed neurons active at the points add: the rest of beta
        rest = u.beta + (mu * u.alpha) @ W
        active = np.flatnonzero(~u.seen & ((u.Y[0] @ Ws.T + bs) > 0))
        unknown[j] = ~u.seen & ((u.Y[0] @ Ws.T + bs) <= 0)
        if len(active):
            coef, *_ = np.linalg.lstsq(Ws[active].T, rest, rcond=None)
            V[j, active] = coef
        c[j] = -float(np.mean(np.maximum(u.Y @ Ws.T + bs, 0.0) @ V[j]))
    return s, V, c, consistent, unknown


def trace(f: Outputs, y: np.ndarray, n: np.ndarray, W: np.ndarray, b: np.ndarray,
          rng: np.random.Generator, bound: float,
          max_fails: int = 12) -> list[tuple[np.ndarray, np.ndarray]]:
    """Critical points of the neuron whose surface passes through ``y`` (normal ``n``),
    one in each region it is followed into, crossing every first-layer plane it meets
    within ``bound`` (scaled units, infinity norm) if it can."""
    h = len(W)
    points = [(y, n)]
    crossed = np.zeros(h, dtype=bool)
    fails = 0
    while not crossed.all() and fails < max_fails and len(points) < 3 * h:
        step = _step(f, y, n, W, b, crossed, rng, bound)
        if step is None:
            fails += 1
            y, n = points[int(rng.integers(len(points)))]  # go on from elsewhere
            continue
        y, n, i = step
        points.append((y, n))
        crossed[i] = True
    return points


def _first_crossing(y: np.ndarray, r: np.ndarray, W: np.ndarray,
                    b: np.ndarray) -> tuple[int, float, float]:
    """The first plane met from ``y`` along ``r``, the distance to it and to the next."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = -(W @ y + b) / (W @ r)
    tau[~(tau > 1e-9)] = np.inf
    order = np.argsort(tau)
    nxt = float(tau[order[1]]) if len(tau) > 1 else np.inf
    return int(order[0]), float(tau[order[0]]), nxt


def _step(f: Outputs, y: np.ndarray, n: np.ndarray, W: np.ndarray, b: np.ndarray,
          crossed: np.ndarray, rng: np.random.Generator,
          bound: float) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Follow the surface from ``y`` to the next first-layer plane, preferably one not yet
    crossed, and find it again just past that plane."""
    d = len(y)
    z = W @ y + b
    # towards each plane not yet crossed, nearest first (a walk that gets there when
    # other planes are in the way), then random directions along the surface
    toward, reach = [], []
    for k in np.flatnonzero(~crossed):
        r = -np.sign(z[k]) * W[k]
        r = r - (r @ n) * n
        norm = float(np.linalg.norm(r))
        if norm > 1e-6:
            toward.append(r / norm)
            reach.append(abs(z[k]) / norm)
    cands = [toward[k] for k in np.argsort(reach)] + list(rng.normal(size=(4, d)))
    best = None
    for r in cands:
        r = r - (r @ n) * n
        norm = float(np.linalg.norm(r))
        if not norm > 1e-6:
            continue
        r = r / norm
        i, tau, nxt = _first_crossing(y, r, W, b)
        if not np.isfinite(tau) or np.abs(y + tau * r).max() > bound:
            continue
        if abs(W[i] @ r) < 0.05:
            continue  # grazing: the segment past the plane would hug it
        if not crossed[i]:
            best = (r, i, tau, nxt)
            break
        if best is None:
            best = (r, i, tau, nxt)
    if best is None:
        return None
    r, i, tau, nxt = best
    e = min(0.3 * (nxt - tau), 0.3 * tau, 0.02)
    q = y + (tau + e) * r
    m = n - (n @ W[i]) * W[i]
    m /= np.linalg.norm(m)
    for half in (4 * e, 32 * e):
        line = Line(q - half * m, 2 * half * m)
        ts = find_kinks(f, line)
        edges = np.concatenate([[0.0], ts, [1.0]])
        order = np.argsort(np.abs(np.asarray(ts) - 0.5))
        for k in order:
            t = ts[k]
            p = line.at(np.array([t]))[0]
            if float(np.min(np.abs(W @ p + b))) < PLANE_TOL * 10:
                continue  # a first-layer plane
            found = kink_normal(f, line, t, min(t - edges[k], edges[k + 2] - t))
            if found is None:
                continue
            p, n1 = found
            B = np.stack([n, W[i]], axis=1)
            coef, *_ = np.linalg.lstsq(B, n1, rcond=None)
            if np.linalg.norm(B @ coef - n1) < SPAN_TOL:
                return p, n1, i
    return None

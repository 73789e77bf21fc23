"""Functionally-equivalent extraction of a ReLU network with two hidden layers, end to end.

1. Critical points on random lines; planes met on two lines, on which the answers bend at
   random points too, are first-layer neurons (:class:`._relu_deep.FirstLayer`).
2. Every other critical point seeds a second-layer neuron unless it lies on the surface of
   one already solved: the surface is traced across the first-layer planes and solved for
   (:func:`._relu_deep.trace`, :func:`._relu_deep.solve_neuron`).
3. The second-layer solutions fix the first layer's signs (a subset sum, as for one hidden
   layer); a fit of the answers on relu(z_j) and z_j fixes the second layer's signs by a
   subset sum too (a wrongly signed neuron needs the linear term: a relu(-z) = a relu(z)
   - a z), then the output layer by least squares.
4. Gauss-Newton on the answers at uniform points refines every parameter to machine
   precision (:func:`._relu_refine.refine`).
5. The fit is checked on points it never saw, uniform ones and more in the small regions
   of the box where a second-layer parameter matters; a failed check joins the fit.
6. A fit that still misfits, with fewer second-layer neurons than the architecture has,
   is missing one that no line met: lines through the worst-fitted points find it.

The search never stops on a count mismatch: it goes on until the architecture's counts
are found, the budget runs low, ``max_lines`` is reached or ``5 * patience`` lines in a
row bring nothing new, and builds the network from what it found.

References: Carlini, Jagielski and Mironov, CRYPTO 2020, sections 4.3-4.5; Jagielski et
al., USENIX Security 2020, section 6; Canales-Martinez et al., EUROCRYPT 2024.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import scipy.linalg

from stealml.attacks._relu_deep import FirstLayer, Neuron, second_layer, solve_neuron, trace
from stealml.attacks._relu_lines import (
    MIN_PROBABILITY,
    Line,
    OutOfBudget,
    Outputs,
    find_kinks,
    kink_normal,
    unsaturated,
)
from stealml.attacks._relu_refine import Network, refine
from stealml.attacks._relu_solve import solve_signs

__all__ = ["exact", "extract_two_layers"]

SOLVE_TOL = 1e-6   # largest residual of a traced neuron's solve (its normals are unit)
CHECK_ROUNDS = 4   # most held-out checks of the fit (each failed one joins the fit)
MISFIT_ROUNDS = 3  # most searches for missing second-layer neurons about the misfit points
MISFIT_LINES = 8   # lines through the worst-fitted points in each
MISFIT_APART = 0.5  # least distance between two of those points (scaled units)
EXACT = 1e-8       # a fit whose residual is below this (times the answers' scale) is exact
POOL = 100_000     # uniform candidates (computed on the model, not asked) for the check


def fit_size(sizes: tuple[int, ...], d: int, n_out: int) -> int:
    """Uniform points bought for the output layer and the refinement."""
    widths = [d, *sizes, n_out]
    params = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    return 4 * params // n_out + 500


def fit_cost(sizes: tuple[int, int], d: int, n_out: int) -> int:
    """Queries :func:`_fit` spends: the uniform points, the points about each
    second-layer neuron's surface and the held-out checks (with an estimate of their
    points in small regions)."""
    n = fit_size(sizes, d, n_out)
    return (n + sizes[1] * _near_size(sizes[0])
            + CHECK_ROUNDS * (n // 4 + sizes[1] * _near_size(sizes[0]) // 2))


def _near_size(h1: int) -> int:
    return 2 * (h1 + 2)


class _Search:
    """Random lines through the box and the critical points found on them."""

    def __init__(self, f: Outputs, d: int, extent: float, rng: np.random.Generator) -> None:
        self.f, self.d, self.extent, self.rng = f, d, extent, rng
        self.lines = 0

    def line(self, skip: Any, centre: np.ndarray | None = None,
             reach: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The clean critical points (point, unit normal) of one more random line,
        except those for which ``skip(y)`` holds (not measured); the line runs ``reach``
        (by default ``extent`` half-diagonals of the box) either side of ``centre`` (by
        default a random point of the box)."""
        self.lines += 1
        r = self.rng.normal(size=self.d)
        r /= np.linalg.norm(r)
        reach = self.extent * math.sqrt(self.d) if reach is None else reach
        centre = self.rng.uniform(-1, 1, self.d) if centre is None else centre
        whole = Line(centre - reach * r, 2 * reach * r)
        out = []
        for line in unsaturated(self.f, whole):  # a logistic output is read where unsaturated
            ts = find_kinks(self.f, line)
            edges = np.concatenate([[0.0], ts, [1.0]])
            for k, t in enumerate(ts):
                if skip(line.at(np.array([t]))[0]):
                    continue
                found = kink_normal(self.f, line, t, min(t - edges[k], edges[k + 2] - t))
                if found is not None:
                    out.append(found)
        return out


def extract_two_layers(f: Outputs, sizes: tuple[int, int], d: int, n_out: int,
                       max_lines: int, patience: int, extent: float,
                       rng: np.random.Generator) -> tuple[Network | None, dict[str, Any], bool]:
    """The network (scaled coordinates), what was found, and whether the budget ran out."""
    h1, h2 = sizes
    search = _Search(f, d, extent, rng)
    first = FirstLayer(d)
    seeds: list[tuple[np.ndarray, np.ndarray]] = []
    neurons: list[Neuron] = []
    info: dict[str, Any] = {}
    exhausted = False
    reserve = fit_cost(sizes, d, n_out)
    try:
        quiet, known = 0, 0
        while search.lines < max_lines and quiet < patience * (1 if known >= h1 else 5):
            if _low(f, reserve):
                raise OutOfBudget
            for y, n in search.line(first.on_plane):
                first.add(y, n, search.lines)
                seeds.append((y, n))
            first.verify(f, rng)
            now = len(first.confirmed()[0])
            quiet = 0 if now > known or search.lines < first.support else quiet + 1
            known = now
        for _ in range(3):
            W, b = first.confirmed()
            _second(f, search, first, neurons, seeds, h2, max_lines, patience, extent,
                    reserve, rng)
            fake = _flat_planes(f, first, neurons, extent, rng)
            if not len(fake):
                break
            seeds.extend(first.reject(fake))
            W, b = first.confirmed()
            traced = [u.traced for u in neurons]
            neurons.clear()
            for points in traced:  # solved again over the first layer without them
                _merge(neurons, solve_neuron(points, W, b), W, b)
    except OutOfBudget:
        exhausted = True
    W, b = first.confirmed()
    if not len(W):
        info.update(lines=search.lines, neurons_found=[0, len(neurons)],
                    neurons_expected=[h1, h2])
        return None, info, exhausted
    net, fit_info, out, worst = _fit(f, W, b, neurons, sizes, d, n_out, rng)
    misfit = 0
    while (misfit < MISFIT_ROUNDS and not (exhausted or out or exact(fit_info))
           and len(neurons) < h2):
        # A second-layer neuron active (or inactive) on a small part of the box, met on
        # no line, is missing: the answers misfit most where it is active, and lines
        # through those points cross its surface (64-16-16-1 seed 3: a unit active on
        # 0.8% of the box, logit error 0.03).
        # The worst points lie apart (``MISFIT_APART``): those about one traced
        # surface would all send their lines into one region (10-15-15-1 seed 7: a unit
        # inactive on 0.05% of the box missed while eight lines ran through a found
        # unit's region, active on 0.09%). A round that finds nothing goes on with the
        # next worst points.
        misfit += 1
        before = len(neurons)
        try:
            for y in worst[:MISFIT_LINES]:
                seeds.extend(search.line(first.on_plane, y, 2 * extent))
            _second(f, search, first, neurons, seeds, h2, max_lines, patience, extent,
                    reserve, rng, more=False)
        except OutOfBudget:
            exhausted = True
        if len(neurons) == before:
            worst = worst[MISFIT_LINES:]
            if not len(worst):
                break
            continue
        net, fit_info, out, worst = _fit(f, W, b, neurons, sizes, d, n_out, rng)
    info.update(fit_info, lines=search.lines, neurons_found=[len(W), len(neurons)],
                neurons_expected=[h1, h2], misfit_rounds=misfit,
                second_layer_residual=max((u.residual for u in neurons), default=0.0),
                first_layer_unseen=int(sum((~u.seen).sum() for u in neurons)))
    return net, info, exhausted or out


def exact(info: dict[str, Any]) -> bool:
    """Whether the fit reproduces the answers to rounding (``info`` from the fit)."""
    return bool(info.get("fit_residual", np.inf) <= EXACT * info.get("output_scale", 0.0))


def _second(f: Outputs, search: _Search, first: FirstLayer, neurons: list[Neuron],
            seeds: list[tuple[np.ndarray, np.ndarray]], h2: int, max_lines: int,
            patience: int, extent: float, reserve: int, rng: np.random.Generator,
            more: bool = True) -> None:
    """Trace and solve second-layer neurons from the seeds, and (``more``) from more
    lines while fewer than ``h2`` were found."""
    W, b = first.confirmed()
    quiet = 0
    while len(W) and len(neurons) < h2 and quiet < 2 * patience:
        before = len(neurons)
        while seeds and len(neurons) < h2:
            if _low(f, reserve):
                raise OutOfBudget
            # seeds in the box first: the surfaces there are the ones that matter
            seeds.sort(key=lambda s: float(np.abs(s[0]).max()))
            y, n = seeds.pop(0)
            if first.on_plane(y) or any(u.holds(W, b, y, n) for u in neurons):
                continue
            neuron = solve_neuron(trace(f, y, n, W, b, rng, 1.0 + extent), W, b)
            if neuron.residual < SOLVE_TOL and neuron.points > 1:
                _merge(neurons, neuron, W, b)
        if not more or len(neurons) >= h2 or search.lines >= max_lines:
            break
        quiet = 0 if len(neurons) > before else quiet + 1
        seeds.extend(search.line(first.on_plane))


def _flat_planes(f: Outputs, first: FirstLayer, neurons: list[Neuron], extent: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Confirmed planes that are flat pieces of a second-layer surface met on several
    lines, not first-layer neurons: no traced surface bends where it crosses them, and
    traced as a surface themselves they bend at some first-layer plane (the new neuron
    is kept), or three traced surfaces cross them."""
    W, b = first.confirmed()
    h = len(W)
    seen = np.array([u.seen for u in neurons]).reshape(-1, h)
    bend = np.array([np.abs(u.alpha) / (1 + np.abs(u.alpha).max())
                     for u in neurons]).reshape(-1, h)
    flat = []
    for c in np.flatnonzero(~((bend > 1e-6) & seen).any(axis=0)):
        others = np.delete(np.arange(h), c)
        y = first.points_of(int(c))[0]
        u = solve_neuron(trace(f, y, W[c], W[others], b[others], rng, 1.0 + extent),
                         W[others], b[others])
        if u.residual < SOLVE_TOL and (np.abs(u.alpha) > 1e-6 * (1 + np.abs(u.alpha).max())).any():
            flat.append(c)
            neurons.append(u)
        elif seen[:, c].sum() >= 3:
            flat.append(c)  # three surfaces cross it unbent: no first-layer neuron
    return np.array(flat, dtype=int)


def _merge(neurons: list[Neuron], new: Neuron, W: np.ndarray, b: np.ndarray) -> None:
    """Add a traced neuron, or (when it was traced before from another seed) solve the
    known one again over both traces: it is then known across more first-layer planes."""
    for k, old in enumerate(neurons):
        if old.same(new, W, b):
            both = solve_neuron(old.traced + new.traced, W, b)
            if both.residual < SOLVE_TOL:
                neurons[k] = both
            return
    neurons.append(new)


def _distinct(V: np.ndarray, c: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The second-layer rows without repeats (one neuron traced from two seeds): rows
    equal up to scale on the first-layer neurons both were traced across; the one traced
    across more is kept."""
    keep: list[int] = []
    for j in np.argsort(-seen.sum(axis=1), kind="stable"):
        same = False
        for k in keep:
            both = seen[j] & seen[k]
            if both.sum() < 2:
                continue
            a, b = np.append(V[j, both], c[j]), np.append(V[k, both], c[k])
            a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
            if min(np.abs(a - b).max(), np.abs(a + b).max()) < 1e-5:
                same = True
                break
        if not same:
            keep.append(int(j))
    return np.sort(np.array(keep, dtype=int))


def _signs_and_unknown(H1: np.ndarray, F: np.ndarray, V: np.ndarray, c: np.ndarray,
                       unknown: np.ndarray,
                       starts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The second layer's signs and unknown weights together (``F``: the answers, one
    column per output): from each of the ``starts`` (sign vectors), each neuron's sign is
    flipped while that lowers the answers' root-mean-square misfit once the unknown
    weights are filled in (the largest misfit, dominated by a few points, stalls on wrong
    flips); the signs that end with the least misfit are kept. A start that fits the
    answers to rounding ends the search."""

    def fit(sig: np.ndarray) -> tuple[float, np.ndarray]:
        Vs, _ = _fill_unknown(H1, F, V * sig[:, None], c * sig, unknown)
        H2 = np.maximum(H1 @ Vs.T + c * sig, 0.0)
        X = np.hstack([H2, np.ones((len(H1), 1))])
        coef, *_ = scipy.linalg.lstsq(X, F, lapack_driver="gelsd", check_finite=False)
        return float(np.sqrt(np.mean((X @ coef - F) ** 2))), Vs * sig[:, None]

    def search(sigma: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        best, Vb = fit(sigma)
        for _ in range(len(V)):
            better = False
            for j in range(len(V)):
                trial = sigma.copy()
                trial[j] = -trial[j]
                err, Vt = fit(trial)
                if err < best * (1 - 1e-3):
                    best, Vb, sigma, better = err, Vt, trial, True
            if not better:
                break
        return best, sigma, Vb

    rounding = EXACT * (1 + float(np.abs(F).max(initial=0.0)))
    result = search(starts[0].copy())
    for k, start in enumerate(starts[1:], 1):
        if result[0] <= rounding:
            break
        if not any(np.array_equal(start, s) for s in starts[:k]):
            result = min(result, search(start.copy()), key=lambda r: r[0])
    return result[1], result[2]


def _fill_unknown(H1: np.ndarray, F: np.ndarray, V: np.ndarray, c: np.ndarray,
                  unknown: np.ndarray, rounds: int = 8,
                  linear: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The second-layer weights no trace saw, from the answers: with the second layer's
    activation patterns fixed (from the current weights), f = sum_j 1[z_j > 0]
    (a_j k_j + sum_i a_j V_ji h_i) + d is linear in a_j and a_j V_ji (k_j the known part
    of z_j); solved, the patterns updated, until they stop changing. With several
    outputs a_j is a vector (one weight per output) and V_ji the least-squares ratio of
    the vector a_j V_ji to it. ``linear`` adds the terms of neurons whose sign is wrong
    (a relu(-z) = a relu(z) - a z): l_j k_j, and one column h_i per first-layer neuron
    with an unknown weight (sum_j l_j V_ji h_i). Returns the weights and the last
    solve's coefficients (a_j, a_j V_ji, then l_j and the rest when ``linear``)."""
    pairs = np.argwhere(unknown)
    F = F.reshape(len(H1), -1)
    if not (len(pairs) or linear):
        return V, np.zeros((0, F.shape[1]))
    ones = np.ones((len(H1), 1))
    K = H1 @ np.where(unknown, 0.0, V).T + c
    lin = [K, H1[:, np.unique(pairs[:, 1])]] if linear else []
    coef = np.zeros((0, F.shape[1]))
    for _ in range(rounds):
        on = (H1 @ V.T + c > 0).astype(float)
        X = np.hstack([on * K, on[:, pairs[:, 0]] * H1[:, pairs[:, 1]], *lin, ones])
        coef, *_ = scipy.linalg.lstsq(X, F, lapack_driver="gelsd", check_finite=False)
        if not len(pairs):
            break
        a, B = coef[:len(V)], coef[len(V):len(V) + len(pairs)]  # (m, o), (pairs, o)
        ap = a[pairs[:, 0]]
        size = np.einsum("po,po->p", ap, ap)
        ok = size > 1e-18
        new = V.copy()
        new[pairs[ok, 0], pairs[ok, 1]] = np.einsum("po,po->p", B[ok], ap[ok]) / size[ok]
        same = np.array_equal(H1 @ new.T + c > 0, on > 0)
        V = new
        if same:
            break
    return V, coef


def _linear_signs(H1: np.ndarray, F: np.ndarray, V: np.ndarray, c: np.ndarray,
                  unknown: np.ndarray) -> np.ndarray:
    """The second layer's signs from one linear fit and a subset sum, as for the first
    layer: f = sum_j a_j relu(z_j) - sum_j mu_j a_j z_j + d (mu_j = 1 where the sign is
    wrong), so the answers' part linear in the first layer's outputs h is
    -sum_j mu_j a_j V_j . h. Its coefficients on the h_i whose weights every trace saw are
    a subset sum over the neurons (:func:`._relu_solve.solve_signs`); those on the h_i
    with an unknown weight also hold that weight times a_j, and are left out.

    A search over one flip at a time stalls where the unknown weights, fitted anew for
    every sign pattern, absorb part of the misfit (10-15-15-1 seed 8: 7 signs wrong)."""
    m, h = V.shape
    pairs = np.argwhere(unknown)
    V, coef = _fill_unknown(H1, F, V, c, unknown, linear=True)
    a, ell = coef[:m], coef[m + len(pairs):2 * m + len(pairs)]
    known = np.where(unknown, 0.0, V)
    rest = np.setdiff1d(np.arange(h), pairs[:, 1])
    mu, _ = solve_signs(a.T, known[:, rest], (known.T @ ell)[rest].T)
    return np.where(mu > 0.5, -1.0, 1.0)


def _low(f: Outputs, reserve: int) -> bool:
    left = f.querier.oracle.ledger.remaining
    return left is not None and left < reserve


def _fit(f: Outputs, W: np.ndarray, b: np.ndarray, neurons: list[Neuron],
         sizes: tuple[int, int], d: int, n_out: int,
         rng: np.random.Generator) -> tuple[Network, dict[str, Any], bool, np.ndarray]:
    """The whole network from the two layers' neurons, fitted to answers at uniform points
    and at points about each second-layer neuron's traced critical points (a neuron
    active on little of the box, or of its unsaturated part, is pinned down where it was
    seen), then checked on points the fit never saw: uniform ones, and more in the small
    regions of the box where a second-layer parameter matters (:func:`_sparse`). A
    failed check (weights that no trace saw, fitted on too few points where they matter)
    adds the check points to the fit and checks again on new ones, ``CHECK_ROUNDS``
    times at most. Returns the
    network, what the fit found, whether the budget ran out, and the points (of the fit
    and the last check) it misfits most, worst first."""
    sign, V, c, consistent, unknown = second_layer(W, b, neurons)
    keep = _distinct(V, c, np.array([u.seen for u in neurons]).reshape(len(V), len(W)))
    V, c, unknown = V[keep], c[keep], unknown[keep]
    W1, b1 = W * sign[:, None], b * sign
    n = fit_size(sizes, d, n_out)
    near = [u.Y[rng.integers(len(u.traced), size=_near_size(len(W)))]
            + 0.05 * rng.normal(size=(_near_size(len(W)), d)) / math.sqrt(d)
            for u in (neurons[k] for k in keep)]
    Y, F, exhausted = _answers(f, np.clip(np.vstack([rng.uniform(-1, 1, (n, d)), *near]),
                                          -1.0, 1.0))
    centred = f.kind == "softmax"
    spare = sizes[1] - len(V) >= n_out
    k = _near_size(len(W)) // 2
    # a logistic output is read only where |logit| stays below this
    limit = (math.log((1 - MIN_PROBABILITY["binary"]) / MIN_PROBABILITY["binary"])
             if f.kind == "binary" else np.inf)
    rounds = 0
    while True:
        rounds += 1
        net, start, resid, sigma = _solve(Y, F, W1, b1, V, c, unknown, spare, n_out, centred)
        if exhausted:
            check, Yc, Fc = np.inf, Y[:0], F[:0]
            break
        # held out: uniform points the fit never saw, and in each small region of the
        # box where a second-layer parameter matters as many as it lacks of k
        Yu = rng.uniform(-1, 1, (n // 4, d))
        Yc, Fc, exhausted = _answers(f, np.vstack([Yu, _sparse(net, Yu, k, limit, rng)]))
        R = net(Yc) - Fc
        R = R - R.mean(axis=1, keepdims=True) if centred else R
        check = float(np.abs(R).max(initial=0.0)) if len(Yc) else np.inf
        scale = 1 + float(np.abs(F).max(initial=0.0))
        # held-out misfit at the fit's own (rounding) level: nothing left to pin down;
        # a fit that misses its own points (64-16-16-1 seed 3: a weight no trace saw, of
        # a unit active on 0.8% of the box) takes the check points too
        settled = check <= max(100 * resid, 1e-12 * scale) and resid <= EXACT * scale
        if settled or rounds >= CHECK_ROUNDS or exhausted:
            break
        Y, F = np.vstack([Y, Yc]), np.vstack([F, Fc])
    Ya, R = np.vstack([Y, Yc]), net(np.vstack([Y, Yc])) - np.vstack([F, Fc])
    R = R - R.mean(axis=1, keepdims=True) if centred else R
    worst = _apart(Ya, np.abs(R).max(axis=1, initial=0.0), MISFIT_ROUNDS * MISFIT_LINES)
    return net, {"fit_points": len(Y), "fit_residual_before_refinement": start,
                 "fit_residual": max(resid, check), "refined_residual": resid,
                 "check_points": len(Yc), "check_residual": check, "fit_rounds": rounds,
                 "output_scale": float(1 + np.abs(F).max(initial=0.0)),
                 "signs_consistent": consistent,
                 "second_layer_flipped": int((sigma < 0).sum())}, exhausted, worst


def _apart(Y: np.ndarray, err: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` of the points ``Y``, worst first (largest ``err``), each at least
    ``MISFIT_APART`` from those taken before it."""
    taken: list[int] = []
    for i in np.argsort(-err, kind="stable"):
        if all(np.linalg.norm(Y[i] - Y[j]) >= MISFIT_APART for j in taken):
            taken.append(int(i))
            if len(taken) == k:
                break
    return Y[taken]


def _regions(net: Network, Y: np.ndarray) -> np.ndarray:
    """Where the second layer's parameters change the answers, one column per region:
    each second-layer neuron's active side and its inactive side, each within each
    first-layer neuron's active side. Its weight on that neuron matters on the active
    side; on the inactive side it is told from a neuron active there (an always-active
    stand-in trades weights with every neuron, except where that one is inactive)."""
    Z1, Z2 = net.pre_activations(Y)
    on1, on2 = Z1 > 0, Z2 > 0
    on = (on2[:, :, None] & on1[:, None, :]).reshape(len(Y), -1)
    off = (~on2[:, :, None] & on1[:, None, :]).reshape(len(Y), -1)
    return np.hstack([on2, ~on2, on, off])


def _sparse(net: Network, Y: np.ndarray, k: int, limit: float,
            rng: np.random.Generator) -> np.ndarray:
    """Points of the box in the regions of :func:`_regions` that hold fewer than ``k``
    of ``Y``, until each holds ``k`` (as the model draws them): a neuron active, or
    inactive, on a small part of the box, or a weight that matters on a small part of
    it, is checked on a handful of uniform points, if any (10-15-15-1 seed 4: a unit
    inactive on 0.02% of the box, another active on 0.09%; the check passed with a
    worst-case error of 6e-10 there). Uniform
    candidates, ``POOL`` of them, whose answers the model predicts are read
    (|output| < ``limit``); a region they miss is smaller than about 1 / ``POOL``."""
    d = Y.shape[1]
    need = k - _regions(net, Y).sum(axis=0)
    if not (need > 0).any():
        return np.zeros((0, d))
    P = rng.uniform(-1, 1, (POOL, d))
    P = P[np.abs(net(P)).max(axis=1) < limit]
    R = _regions(net, P)
    take = np.zeros(len(P), dtype=bool)
    for r in np.argsort(R.sum(axis=0), kind="stable"):  # the smallest regions first
        short = need[r] - int((R[:, r] & take).sum())
        if short > 0:
            take[np.flatnonzero(R[:, r] & ~take)[:short]] = True
    return P[take]


def _answers(f: Outputs, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The read answers at ``Y`` (saturated rows dropped), and whether the budget ran
    out (then the rows answered before it did)."""
    exhausted = False
    try:
        F = f(Y)
    except OutOfBudget:
        (Y, F), exhausted = f.partial, True
    keep = np.isfinite(F).all(axis=1) if len(F) else np.zeros(0, dtype=bool)
    return Y[keep], F[keep].reshape(int(keep.sum()), -1), exhausted


def _solve(Y: np.ndarray, F: np.ndarray, W1: np.ndarray, b1: np.ndarray, V: np.ndarray,
           c: np.ndarray, unknown: np.ndarray, spare: bool, n_out: int,
           centred: bool) -> tuple[Network, float, float, np.ndarray]:
    """Second-layer signs and unknown weights, the output layer and the refinement, from
    the answers ``F`` at ``Y``; returns the network, its largest misfit before and after
    the refinement, and the second layer's signs."""
    H1 = np.maximum(Y @ W1.T + b1, 0.0)
    Z = H1 @ V.T + c
    m = len(V)
    ones = np.ones((len(Y), 1))
    # A missing second-layer neuron that is active on the whole box adds a linear
    # function of H1 there: room for it, as one always-active neuron per output.
    lin = [H1] if spare else []
    coef, *_ = scipy.linalg.lstsq(np.hstack([np.maximum(Z, 0.0), Z, ones]), F,
                                  lapack_driver="gelsd", check_finite=False)
    e, ell = coef[:m], coef[m:2 * m]
    sigma = np.where(np.linalg.norm(e + ell, axis=1) < np.linalg.norm(ell, axis=1), -1.0, 1.0)
    # the subset sum first; a missing neuron active on the whole box (``spare``) adds a
    # linear term of its own, which leaves the subset sum without meaning
    starts = [sigma] if spare else [_linear_signs(H1, F, V, c, unknown), sigma]
    sigma, V = _signs_and_unknown(H1, F, V, c, unknown, starts)
    V, c = V * sigma[:, None], c * sigma
    H2 = np.maximum(H1 @ V.T + c, 0.0)
    coef, *_ = scipy.linalg.lstsq(np.hstack([H2, *lin, ones]), F, lapack_driver="gelsd",
                                  check_finite=False)
    A, c0 = coef[:m].T, coef[-1]
    if spare:
        L = coef[m:m + len(W1)].T  # (o, h1)
        top = np.maximum(np.abs(W1).sum(axis=1) + b1, 0.0)  # largest h1 on the box
        low = np.minimum(L, 0.0) @ top - 1.0  # L h1 >= low on the box
        V, c = np.vstack([V, L]), np.append(c, -low)
        A, c0 = np.hstack([A, np.eye(n_out)]), c0 + low
    net = Network([(W1, b1), (V, c)], A, c0)
    start = float(np.abs(net(Y) - F).max(initial=0.0))
    net, resid = refine(net, Y, F, centred)
    return net, start, resid, sigma

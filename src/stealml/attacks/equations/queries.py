"""Query design shared by the equation-solving solvers.

Each answer is usable as an exact equation only where its probabilities are not
saturated: an API computing p0 = 1 - sigmoid(z) loses every digit of p0 once it falls
near 1e-16. The :class:`Table` keeps every (query, probabilities) pair bought and says
which are usable; :func:`find_center` finds a point of the space whose answer is far from
saturation, so that queries drawn around it all carry exact equations.

References: Tramèr et al., USENIX Security 2016, section 4.1.
"""

from __future__ import annotations

import numpy as np

from stealml.attacks.base import Querier
from stealml.exceptions import OracleCapabilityError
from stealml.space import CategoricalFeature, FeatureSpace

__all__ = ["CENTER_MARGIN", "Table", "ask_balanced_star", "ask_star", "balanced_point",
           "balanced_rows", "find_center", "row_rank"]

# a good centre has every class at p >= CENTER_MARGIN x the saturation threshold (for
# two classes 3e-4, |logit| <= 8), so the points drawn around it stay usable
CENTER_MARGIN = 300.0
STAR_ROUND = 16  # coordinate steps asked in one round of the star design
# a balanced star's steps move no log-probability by more than this (under the fit so far)
BALANCED_REACH = 1.5


class Table:
    """Every query asked and its probability answer, with the classes seen."""

    def __init__(self, querier: Querier, classes: np.ndarray | None,
                 min_probability: float) -> None:
        self.querier = querier
        self.classes = classes
        self.min_probability = min_probability
        self._X: list[np.ndarray] = []
        self._P: list[np.ndarray] = []

    @property
    def n(self) -> int:
        return sum(len(x) for x in self._X)

    def ask(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Query ``X`` (as much of it as the budget pays); returns the rows and answers."""
        asked, answers = self.querier.ask(X)
        if not answers:
            return asked, np.empty((0, 0 if self.classes is None else len(self.classes)))
        if self.classes is None:
            self.classes = answers[0].classes
        blocks = [a.probabilities for a in answers]
        if any(b is None for b in blocks):
            raise OracleCapabilityError("the API stopped revealing probabilities")
        P = np.vstack([np.asarray(b, dtype=float) for b in blocks if b is not None])
        if np.isnan(P).any():
            raise OracleCapabilityError(
                "the API hides some class probabilities (top-k); equation solving needs "
                "all of them")
        self._X.append(asked)
        self._P.append(P)
        return asked, P

    def usable(self, P: np.ndarray) -> np.ndarray:
        """Rows whose every probability is above the saturation threshold."""
        return np.asarray(P.min(axis=1) >= self.min_probability) if len(P) else \
            np.zeros(0, dtype=bool)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows asked so far and their probabilities."""
        if not self._X:
            return np.empty((0, 0)), np.empty((0, 0))
        return np.vstack(self._X), np.vstack(self._P)


def _log_ratio(P: np.ndarray) -> np.ndarray:
    """log(p1 / p0) of two-class answers; +-inf where a probability is exactly 0."""
    with np.errstate(divide="ignore"):
        return np.asarray(np.log(P[:, 1]) - np.log(P[:, 0]))


def find_center(table: Table, space: FeatureSpace, rng: np.random.Generator,
                max_search: int, valid: bool = False) -> np.ndarray:
    """A point whose answer gives every class p >= CENTER_MARGIN x the saturation
    threshold, or the best point seen.

    The centre of the space comes first (a valid row where the space has categories). If
    it is saturated, candidates (valid rows of the space and points of its box, in turn)
    are asked; with two classes, once a point of
    the other class is found, regula falsi on the logit (linear in x for a logistic
    model, and still approximately known when saturated) reaches a moderate point in a
    few queries. With ``valid`` (an API that takes raw rows only), every candidate is a
    valid row with the first one's categories, so that the points between two of them
    are valid rows too.
    """
    good = CENTER_MARGIN * table.min_probability
    lo, hi = space.encoded_bounds()
    has_categories = any(isinstance(f, CategoricalFeature) for f in space.features)
    # a space with categories: its box centre (every one-hot column at 0.5) is no real
    # input and often far out on the model's scale; start from a valid row instead
    first = space.sample_encoded(1, rng)[0] if has_categories else (lo + hi) / 2
    asked, P = table.ask(first[None, :])
    if not len(asked):
        return first
    best, best_p = first, float(P.min())
    if best_p >= good:
        return first
    z_first = float(_log_ratio(P)[0]) if P.shape[1] == 2 else 0.0
    numeric = np.flatnonzero(~space.categorical_columns)
    for i in range(2 * max_search):
        if valid:  # the first row's categories, other numeric values
            cand = first[None, :].copy()
            cand[0, numeric] = rng.uniform(lo[numeric], hi[numeric])
        else:
            cand = space.sample_encoded(1, rng) if i % 2 == 0 else \
                rng.uniform(lo, hi, size=(1, len(lo)))
        asked, P = table.ask(cand)
        if not len(asked):
            break
        if P[0].min() > best_p:
            best, best_p = asked[0], float(P[0].min())
        if best_p >= good:
            return best
        if P.shape[1] == 2:
            z = float(_log_ratio(P)[0])
            if np.sign(z) == -np.sign(z_first):
                return _regula_falsi(table, first, z_first, asked[0], z, best, good)
    return best


def _regula_falsi(table: Table, a: np.ndarray, za: float, b: np.ndarray, zb: float,
                  fallback: np.ndarray, good: float) -> np.ndarray:
    side = np.sign(za)
    for _ in range(60):
        t = za / (za - zb) if np.isfinite(za) and np.isfinite(zb) else 0.5
        mid = a + min(max(t, 0.05), 0.95) * (b - a)
        asked, P = table.ask(mid[None, :])
        if not len(asked):
            break
        if P.min() >= good:
            return mid
        z = float(_log_ratio(P)[0])
        if np.sign(z) == side:
            a, za = mid, z
        else:
            b, zb = mid, z
    return fallback


def balanced_rows(space: FeatureSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` valid rows of the space, encoded: continuous values uniform, and each
    categorical feature cycling through its categories in shuffled rounds, so that every
    category is asked (uniform draws leave rare ones out, and their parameters free)."""
    raw = space.sample(n, rng)
    for j, f in enumerate(space.features):
        if isinstance(f, CategoricalFeature):
            rounds = -(-n // len(f.values))
            codes = np.concatenate([rng.permutation(len(f.values)) for _ in range(rounds)])
            raw[:, j] = [f.values[k] for k in codes[:n]]
    return space.encode(raw, allow_missing=False)


def row_rank(space: FeatureSpace) -> int:
    """Rank of [X, 1] over valid rows: one per varying continuous column, one per
    category but one per categorical feature (a one-hot block sums to 1), and the bias."""
    lo, hi = space.encoded_bounds()
    cats = [f for f in space.features if isinstance(f, CategoricalFeature)]
    n_cat_cols = sum(len(f.values) for f in cats)
    return int((hi > lo).sum()) - n_cat_cols + sum(len(f.values) - 1 for f in cats) + 1


def _log_ratios(P: np.ndarray) -> np.ndarray:
    """log(p_k / p_0), k = 1..c-1, of each answer (the softmax's linear outputs)."""
    with np.errstate(divide="ignore"):
        L = np.log(P)
    return np.asarray(L[:, 1:] - L[:, :1])


def _room(L: np.ndarray, min_probability: float) -> float:
    """How far (in log-ratio) the smallest probability of an answer with log-ratios
    ``L`` is above the saturation threshold."""
    z = np.r_[0.0, L]
    log_p_min = float(z.min() - np.log(np.exp(z - z.max()).sum()) - z.max())
    return log_p_min - float(np.log(min_probability))


def _block_of(space: FeatureSpace) -> np.ndarray:
    """For each encoded column, the index of its categorical feature (-1 for a
    continuous column)."""
    return np.where(space.categorical_columns, space.feature_of_column, -1)


def ask_star(table: Table, space: FeatureSpace, rng: np.random.Generator, lo: np.ndarray,
             hi: np.ndarray, free: np.ndarray, spread: float, max_shrink: int,
             max_search: int, valid: bool = False) -> np.ndarray:
    """One usable equation per free column and the bias: d + 1 queries when none is
    saturated. Returns the point the steps were taken from.

    The first query is the origin of the model space (the middle of every range, every
    one-hot column 0), where a linear model's logits are its biases, which
    regularisation keeps moderate; only if its answer is saturated is a centre searched
    for (:func:`find_center`, which spends queries). Every later query is one step along
    one new column from the most moderate point asked so far (the largest smallest
    probability), whose answer is known exactly: the step's answer is then exactly that
    column's effect, every equation keeps its precision (an answer's log-ratios are
    exact to about 1e-16 over its smallest probability) and the design stays well
    conditioned. A step is as long as half the room before saturation allows for the
    largest effect seen among columns of its kind (numeric ones first); while none is
    known, or while the point has little room (its smallest probability below 300 times
    the threshold), ``spread`` of the half-range, shrunk with the room, and one step a
    query, so that a more moderate point found is stepped from at once. A step whose
    answer is saturated anyway is asked again 8 times shorter (``max_shrink`` times).

    With ``valid`` (an API that takes raw rows only, :func:`~stealml.oracles.valid_rows_only`),
    every query is a valid row: the origin takes each categorical feature's first value,
    the search for a centre keeps to valid rows, and a one-hot column's step switches its
    feature from the base's category to the column's (the answer's change is then the
    difference of the two columns' weights; a block of k values gives k - 1 equations,
    the rank valid rows can give: :func:`row_rank`). Such a step cannot be shortened.

    References: Tramèr et al., USENIX Security 2016, section 4.1.1.
    """
    block = _block_of(space) if valid else np.full(len(lo), -1)
    origin = np.where(free, np.clip(0.0, lo, hi), lo)
    if valid:
        for cols in (np.flatnonzero(block == b) for b in np.unique(block[block >= 0])):
            origin[cols] = 0.0
            origin[cols[0]] = 1.0
    asked, P = table.ask(origin[None, :])
    if not len(asked):
        return origin
    if table.usable(P)[0]:
        base, L_base = origin, _log_ratios(P)[0]
    else:
        base = find_center(table, space, rng, max_search, valid)
        X, P_all = table.data()
        at = np.flatnonzero((X == base).all(axis=1))
        if not len(at) or not table.usable(P_all[at[:1]])[0]:
            return base  # no moderate point found: the caller's fit does what it can
        L_base = _log_ratios(P_all[at[:1]])[0]
    full = float(np.log(CENTER_MARGIN))  # room for steps of unknown effect
    width = hi - lo
    effect: dict[int, np.ndarray] = {}  # column -> change of the log-ratios per unit
    cols = rng.permutation(np.flatnonzero(free))
    todo = [(int(j), 0) for j in cols[np.argsort(-width[cols], kind="stable")]]
    while todo and not table.querier.exhausted:
        room = _room(L_base, table.min_probability)
        batch = todo[:1] if room < full else [
            t for t in todo[:STAR_ROUND] if width[t[0]] == width[todo[0][0]]]
        todo = todo[len(batch):]
        if valid:  # a one-hot column: from the base's category (not asked: its own)
            batch = [(j, k) for j, k in batch if block[j] < 0 or base[j] == 0]
            if not batch:
                continue
        steps = [1.0 if block[j] >= 0 else
                 _step(j, 8.0 ** -shrunk, base, lo, hi, effect, room, spread, full)
                 for j, shrunk in batch]
        X = np.repeat(base[None, :], len(batch), axis=0)
        for i, (j, _) in enumerate(batch):
            if block[j] >= 0:
                X[i, block == block[j]] = 0.0
        X[np.arange(len(batch)), [j for j, _ in batch]] += steps
        asked, P = table.ask(X)
        ok = table.usable(P)
        L = _log_ratios(P) if len(P) else np.empty((0, len(L_base)))
        best = (room, base, L_base)
        for i, (j, shrunk) in enumerate(batch[:len(asked)]):
            if ok[i]:
                effect[j] = (L[i] - L_base) / steps[i]
                r = _room(L[i], table.min_probability)
                if room < full and r > best[0]:
                    best = (r, X[i], L[i])
            elif shrunk < max_shrink and block[j] < 0:
                todo.insert(0, (j, shrunk + 1))
        _, base, L_base = best
    return base


def _step(j: int, scale: float, base: np.ndarray, lo: np.ndarray, hi: np.ndarray,
          effect: dict[int, np.ndarray], room: float, spread: float, full: float) -> float:
    """How far to step along column ``j`` from ``base`` (signed, inside the box)."""
    up, down = hi[j] - base[j], base[j] - lo[j]
    reach = max(up, down)
    kind = [k for k in effect if hi[k] - lo[k] == hi[j] - lo[j]] or list(effect)
    big = max((float(np.abs(effect[k]).max()) for k in kind), default=0.0)
    if big > 0 and room >= full:  # as long as half the room allows for the largest effect
        s = min(reach, room / (2.0 * big))
    else:
        s = min(reach, spread * (hi[j] - lo[j]) / 2.0 * min(1.0, max(room, 0.0) / full))
    s = max(s * scale, 1e-6 * (hi[j] - lo[j]))
    return s if s <= up else -s


def balanced_point(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   free: np.ndarray) -> np.ndarray:
    """The point of the box where the softmax model ``theta`` (c, d + 1) puts its classes
    closest to equal: the largest smallest logit less the largest one, a linear program
    (every probability 1 / c where the box allows it)."""
    from scipy.optimize import linprog

    c, d = theta.shape[0], len(lo)
    cols = np.flatnonzero(free)
    W, b = theta[:, cols], theta[:, -1] + theta[:, :-1][:, ~free] @ lo[~free]
    k = len(cols)
    # variables: x (free columns), u <= every logit, v >= every logit; maximise u - v
    A = np.vstack([np.hstack([-W, np.ones((c, 1)), np.zeros((c, 1))]),
                   np.hstack([W, np.zeros((c, 1)), -np.ones((c, 1))])])
    res = linprog(np.r_[np.zeros(k), -1.0, 1.0], A_ub=A, b_ub=np.r_[b, -b],
                  bounds=[*zip(lo[cols], hi[cols], strict=True), (None, None), (None, None)],
                  method="highs")
    x = np.where(free, (lo + hi) / 2, lo)
    if res.status == 0:
        x[cols] = res.x[:k]
    return np.asarray(x[:d])


def ask_balanced_star(table: Table, theta: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                      free: np.ndarray, rng: np.random.Generator,
                      reach: float = BALANCED_REACH) -> np.ndarray:
    """A base where the model fitted so far (``theta``) makes every class about equally
    likely (:func:`balanced_point`), and one step along each free column from it, as long
    as the box allows while no class's log-probability moves by more than ``reach``
    under ``theta``: d + 1 queries whose every probability stays far above a rounding's
    half-width, so that each rounded answer's log-ratios keep their relative precision
    (at 4 decimals, p >= 0.04 keeps 3e-3, where a class at p = 0.005 keeps 1e-2).
    Returns the base."""
    base = balanced_point(theta, lo, hi, free)
    cols = rng.permutation(np.flatnonzero(free))
    grid = np.linspace(0.0, 1.0, 65)[1:]

    def logp(X: np.ndarray) -> np.ndarray:
        Z = X @ theta[:, :-1].T + theta[:, -1]
        return np.asarray(Z - np.logaddexp.reduce(Z, axis=1, keepdims=True))

    l0 = logp(base[None, :])[0]
    X = np.repeat(base[None, :], len(cols) + 1, axis=0)
    for i, j in enumerate(cols):
        best = 0.0
        for edge in (hi[j] - base[j], lo[j] - base[j]):
            if abs(edge) <= abs(best):
                continue
            steps = grid * edge
            P = np.repeat(base[None, :], len(steps), axis=0)
            P[:, j] += steps
            ok = np.abs(logp(P) - l0).max(axis=1) <= reach
            s = float(steps[ok].max(initial=0.0) if edge > 0 else steps[ok].min(initial=0.0))
            if not ok.any():
                s = float(steps[0])
            best = s if abs(s) > abs(best) else best
        X[i + 1, j] += best
    table.ask(X)
    return base

"""Bin boundaries of a feature-discovery attack, narrowed where they matter.

A :class:`Boundary` is an interval ``(lo, hi]`` of one numeric feature (scaled unit) with
``lo`` in the lower bin and ``hi`` in the upper one. Line search to a fixed epsilon leaves
every boundary equally vague, although most matter little: a uniform input lands between
a found and a true boundary with probability (hi - lo) / 2, and is then labelled wrongly
only where swapping the two bins' weights changes the argmax. Once the model is solved
over the coarse map, :func:`refine` estimates that second factor (the boundary's
``weight``) on uniform rows of the stolen model, costing no query, and narrows boundaries
by ``weight * (hi - lo) / 2`` (a bound on the share of uniform inputs the boundary can
get wrong) until their sum is below a tolerance.

One query narrows one boundary of *every* binned feature at once: with the model solved,
the answer to a row that sets several features inside their boundaries' intervals tells
which side of each boundary each value fell on (the 2^m combinations of bins predict
distinct answers; features whose combinations could not be told apart are left to
another query). An answer that matches no combination means a bin was missed inside an
interval: the features are then asked one at a time, and an interval that holds another
bin goes back to line search.

References: Tramèr et al., USENIX Security 2016, section 5.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from stealml.attacks._discovery_queries import ROUND_RATIO, Book, Prober, roundest
from stealml.space import ContinuousFeature, FeatureSpace

__all__ = ["Boundary", "is_round", "refine", "split_point", "weigh"]

MATCH_TOL = 1e-6  # an answer matches a predicted one to this much (largest |dp|)
SEPARATION = 1e-5  # combinations predicted closer than this cannot share a query
MAX_GROUP = 8  # most features set in one query (2^8 combinations to tell apart)
MC_ROWS = 4096  # uniform rows on which a boundary's weight is estimated


@dataclass
class Boundary:
    """One bin boundary of feature ``feature``: in ``(lo, hi]`` (scaled unit).

    ``at_hi``: ``hi`` is a round value (one a quantile of real data is likely to sit on)
    found in the upper bin, so the boundary is put on it. ``exact``: no input of the
    feature's grid lies between a placement and the truth. ``weight``: the share of
    uniform inputs whose label changes with this boundary's two bins.
    """

    feature: int
    lo: float
    hi: float
    at_hi: bool = False
    exact: bool = False
    weight: float = 1.0

    @property
    def edge(self) -> float:
        """Where the boundary is put: on a round upper end, else in the middle."""
        return self.hi if self.at_hi or self.exact else (self.lo + self.hi) / 2

    @property
    def doubt(self) -> float:
        """A bound on the share of uniform inputs this boundary may label wrongly."""
        return 0.0 if self.exact else self.weight * (self.hi - self.lo) / 2


def _raw(f: ContinuousFeature, z: float) -> float:
    return f.min + (z + 1.0) * (f.max - f.min) / 2.0


def _scaled(f: ContinuousFeature, x: float) -> float:
    return 2.0 * (x - f.min) / (f.max - f.min) - 1.0  # as FeatureSpace scales it


def _roundest(a: float, b: float, finest: float) -> float | None:
    """The multiple of the largest power of ten (down to ``finest``) in [a, b]; of
    those, the one nearest the middle."""
    if not b >= a:
        return None
    k = math.floor(math.log10(max(abs(a), abs(b), finest)))
    while 10.0 ** k >= finest:
        unit = 10.0 ** k
        x = round(round((a + b) / 2 / unit) * unit, max(-k, 0))
        if a <= x <= b:
            return x
        k -= 1
    return None


def is_round(f: ContinuousFeature, z: float, width: float) -> bool:
    """Whether raw value of ``z`` is a multiple of a power of ten at least
    ``ROUND_RATIO`` times ``width`` (scaled): a likely quantile of real data."""
    if width <= 0:
        return False
    unit = 10.0 ** math.ceil(math.log10(ROUND_RATIO * width * (f.max - f.min) / 2.0))
    x = _raw(f, z)
    return abs(x / unit - round(x / unit)) < 1e-9


def split_point(f: ContinuousFeature, lo: float, hi: float) -> float | None:
    """Where to ask inside ``(lo, hi)`` (scaled unit); None when nothing is left there.

    On a grid: the grid value nearest the middle (none inside: the boundary is exact).
    Else a value much rounder than the interval (a multiple of a power of ten at least
    10 times its width), where a quantile of real data is likely to sit, if one is
    inside; else the roundest value of its middle fifth, so that a round boundary is
    hit on the way; else the middle, while a float lies strictly inside.
    """
    if f.granularity is not None:
        g = f.granularity
        k = round((_raw(f, (lo + hi) / 2) - f.min) / g)
        grid = sorted((_scaled(f, f.min + i * g) for i in (k - 1, k, k + 1)),
                      key=lambda v: abs(v - (lo + hi) / 2))
        return next((v for v in grid if lo < v < hi), None)
    z = roundest(f, lo, hi) if _raw(f, hi) > _raw(f, lo) else None
    if z is None:
        w = hi - lo
        a, b = _raw(f, lo + 0.4 * w), _raw(f, hi - 0.4 * w)
        r = _roundest(a, b, (b - a) / 10.0)
        z = _scaled(f, r) if r is not None else None
    if z is None or not lo < z < hi:
        z = (lo + hi) / 2
    return z if lo < z < hi else None


class _Refiner:
    """State of one refinement: the model's view of each boundary's two bins."""

    def __init__(self, model: Any, space: FeatureSpace, probe: Prober, book: Book,
                 bounds: list[Boundary]) -> None:
        self.model = model
        self.space = space
        self.probe = probe
        self.book = book
        # points known to lie in each boundary's lower and upper bin, however the
        # boundary moves: the model was built with them on those sides
        self.reps = {id(b): (b.lo, b.hi) for b in bounds}
        self.moves = 0  # boundaries narrowed

    def _col(self, b: Boundary) -> int:
        return self.space.columns(b.feature).start

    def combos(self, group: list[Boundary], row: np.ndarray) -> np.ndarray:
        """Predicted answers of ``row`` with each feature of ``group`` in its lower or
        upper bin: 2^m rows, combination k putting boundary i above when bit i is set."""
        m = len(group)
        rows = np.repeat(row[None, :], 2 ** m, axis=0)
        bits = (np.arange(2 ** m)[:, None] >> np.arange(m)[None, :]) & 1
        for i, b in enumerate(group):
            lo, hi = self.reps[id(b)]
            rows[:, self._col(b)] = np.where(bits[:, i] == 1, hi, lo)
        return np.asarray(self.model.predict_proba(rows), dtype=float)

    def separable(self, group: list[Boundary]) -> bool:
        P = self.combos(group, self.probe.base)
        gap = np.max(np.abs(P[:, None, :] - P[None, :, :]), axis=2)
        np.fill_diagonal(gap, np.inf)
        return bool(gap.min() >= SEPARATION)

    def group(self, bounds: list[Boundary]) -> list[Boundary]:
        """The most doubtful boundary of each feature, most doubtful first, as many as
        one answer tells apart."""
        best: dict[int, Boundary] = {}
        for b in bounds:
            if b.doubt > 0 and (b.feature not in best or b.doubt > best[b.feature].doubt):
                best[b.feature] = b
        group: list[Boundary] = []
        for b in sorted(best.values(), key=lambda b: -b.doubt):
            if len(group) < MAX_GROUP and (not group or self.separable([*group, b])):
                group.append(b)
        return group

    def decode(self, group: list[Boundary], row: np.ndarray,
               p: np.ndarray) -> list[bool] | None:
        """Which side of each boundary ``row`` fell on (True: above), or None when no
        combination of the two bins matches the answer."""
        err = np.max(np.abs(self.combos(group, row) - p), axis=1)
        k = int(np.argmin(err))
        if err[k] > MATCH_TOL:
            return None
        return [bool((k >> i) & 1) for i in range(len(group))]


def weigh(model: Any, space: FeatureSpace, bounds: list[Boundary],
          rng: np.random.Generator) -> None:
    """Each boundary's weight: the share of uniform rows that ``model`` labels
    differently with the boundary's feature in its lower and in its upper bin
    (Laplace-smoothed, so never 0). No query: the stolen model is asked."""
    U = space.sample_encoded(MC_ROWS, rng)
    for b in bounds:
        col = space.columns(b.feature).start
        A, B = U.copy(), U.copy()
        A[:, col], B[:, col] = b.lo, b.hi
        flips = int(np.sum(model.predict(A) != model.predict(B)))
        b.weight = (flips + 1) / (MC_ROWS + 2)


def _on_grid(space: FeatureSpace, b: Boundary) -> bool:
    return getattr(space.features[b.feature], "granularity", None) is not None


def _move(f: ContinuousFeature, b: Boundary, v: float, above: bool) -> None:
    if above:
        b.hi, b.at_hi = v, is_round(f, v, v - b.lo)
    else:
        b.lo = v


def refine(model: Any, space: FeatureSpace, probe: Prober, book: Book,
           bounds: list[Boundary], tolerance: float,
           rng: np.random.Generator) -> tuple[list[tuple[int, float, float]], int]:
    """Narrow ``bounds`` (in place) until the sum of their doubts is at most
    ``tolerance`` and every boundary of a feature on a grid is exact (real data sits on
    the grid, next to its quantiles), or the budget runs out, or nothing is left inside
    any of them. Returns intervals found to hold more than one boundary (to be searched
    again; else []), and how many boundaries were narrowed by the answers to queries."""
    ref = _Refiner(model, space, probe, book, bounds)
    weigh(model, space, bounds, rng)
    while not book.querier.exhausted and (
            sum(b.doubt for b in bounds) > tolerance
            or any(not b.exact and _on_grid(space, b) for b in bounds)):
        group = ref.group(bounds)
        if not group:
            return [], ref.moves
        feats = [cast(ContinuousFeature, space.features[b.feature]) for b in group]
        splits = [split_point(f, b.lo, b.hi) for f, b in zip(feats, group, strict=True)]
        for b, v in zip(group, splits, strict=True):
            if v is None:  # nothing left between two adjacent floats
                b.exact = True
        live = [(f, b, v) for f, b, v in zip(feats, group, splits, strict=True)
                if v is not None]
        if not live:
            continue
        row = probe.base.copy()
        for _, b, v in live:
            row[ref._col(b)] = v
        asked, P = book.ask(row[None, :])
        if not len(asked):
            break
        sides = ref.decode([b for _, b, _ in live], row, P[0])
        if sides is not None:
            for (f, b, v), above in zip(live, sides, strict=True):
                _move(f, b, v, above)
            ref.moves += len(live)
            continue
        # no combination fits: ask each feature alone; one that fits neither bin hides
        # another bin between its boundary's ends
        hidden = []
        singles = [probe.at(b.feature, v) for _, b, v in live]
        asked, P = book.ask(np.vstack(singles)) if len(live) > 1 else (asked, P)
        for (f, b, v), x, p in zip(live, singles, P, strict=False):  # P: what was bought
            side = ref.decode([b], x, p)
            if side is None:
                hidden.append(b)
            else:
                _move(f, b, v, side[0])
                ref.moves += 1
        if hidden:
            for b in hidden:
                bounds.remove(b)
            cut = {id(b): v for _, b, v in live}
            return [piece for b in hidden for piece in
                    ((b.feature, b.lo, cut[id(b)]), (b.feature, cut[id(b)], b.hi))], ref.moves
    return [], ref.moves

"""Boundary points of a binary classifier by line searches between pool points of its
two classes, for Lowd-Meek: the pool spans the space and each pool point is used, so the
boundary points span the boundary.

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 6; Lowd and Meek, "Adversarial learning", KDD 2005.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from stealml.attacks._labels import LabelStore, Path, bisect
from stealml.exceptions import UnsupportedModelError
from stealml.space import FeatureSpace

__all__ = ["BoundarySearch"]

# valid rows: far ends given the near end's categories that may answer its class before
# the search gives up (per boundary point wanted, and in all)
MISSES_PER_POINT, MISSES = 10, 100


class BoundarySearch:
    """A pool of labelled points, and boundary points found between its two classes."""

    def __init__(self, store: LabelStore, space: FeatureSpace,
                 rng: np.random.Generator, valid: bool = False) -> None:
        self.store = store
        self.space = space
        # valid: every query a valid row (an API of raw rows over categorical features):
        # the pool holds valid rows, and each search runs between two rows of the same
        # categories, along numeric columns only (:meth:`boundary_points`)
        self.valid = valid
        self.missed = 0  # valid: far ends that answered the near end's class
        self.categorical = space.categorical_columns
        self.path = Path(space, valid=False)
        lo, hi = space.encoded_bounds()
        self.lo, self.hi = lo, hi
        self.rng = rng
        self.labels: np.ndarray | None = None  # the two classes, negative first
        self.pool = np.empty((0, len(lo)))
        self.pool_y = np.empty(0, dtype=object)
        self.pool_size = 0
        self.points: list[np.ndarray] = []  # boundary points
        self.ends: list[tuple[np.ndarray, np.ndarray]] = []  # their segments
        self._pairs: set[tuple[int, int]] = set()

    def find_both_classes(self, max_search: int, classes: np.ndarray | None) -> None:
        """Ask the centre and uniform points of the box until both classes answer."""
        if self.valid:  # valid rows only
            X = self.space.sample_encoded(max_search, self.rng)
        else:
            X = np.empty((max_search, len(self.lo)))
            X[0] = (self.lo + self.hi) / 2
            X[1::2] = self.space.sample_encoded(len(X[1::2]), self.rng)
            X[2::2] = self.rng.uniform(self.lo, self.hi, (len(X[2::2]), len(self.lo)))
        edges = [0, *[e for e in (8, 16, 32, 64, 128) if e < max_search], max_search]
        for start, stop in itertools.pairwise(edges):
            y = self.store.ask(X[start:stop])
            self.pool = np.vstack([self.pool, X[start:start + len(y)]])
            self.pool_y = np.concatenate([self.pool_y, y])
            seen = np.unique(self.pool_y.astype(str))
            if len(seen) > 2:
                raise UnsupportedModelError(f"Lowd-Meek extracts binary classifiers; the "
                                            f"API answered {len(seen)} classes")
            if len(seen) == 2 or self.store.exhausted:
                break
        self.pool_size = len(self.pool)
        values = list(dict.fromkeys(self.pool_y.tolist()))
        if len(values) == 2:
            order = [str(c) for c in classes] if classes is not None else sorted(map(str, values))
            self.labels = np.array(sorted(values, key=lambda v: order.index(str(v))))

    def steps(self, precision: float) -> int:
        longest = float(np.linalg.norm(self.hi - self.lo))
        return max(1, math.ceil(math.log2(longest / precision)))

    def _new_pairs(self, n: int) -> list[tuple[int, int]]:
        """Up to ``n`` new (negative, positive) pairs of pool points, each time the
        least used point with the least used partner, so every point's direction is
        spanned."""
        assert self.labels is not None
        negative = self.pool_y.astype(str) == str(self.labels[0])
        used = np.bincount(np.array([i for p in self._pairs for i in p], dtype=int),
                           minlength=len(self.pool)).astype(float)
        out: list[tuple[int, int]] = []
        for _ in range(n):
            order = np.lexsort((self.rng.random(len(used)), used))
            pair = self._partner(order, negative)
            if pair is None:
                break
            out.append(pair)
            self._pairs.add(pair)
            used[list(pair)] += 1
        return out

    def _partner(self, order: np.ndarray,
                 negative: np.ndarray) -> tuple[int, int] | None:
        """The first point of ``order`` with a partner of the other class not yet paired
        with it (the first such partner in ``order``)."""
        for i in order:
            for j in order:
                if negative[i] != negative[j]:
                    pair = (int(i), int(j)) if negative[i] else (int(j), int(i))
                    if pair not in self._pairs:
                        return pair
        return None

    def boundary_points(self, n: int, steps: int) -> None:
        """Line-search until ``n`` boundary points are known (fewer if the budget ends)."""
        while len(self.points) < n and not self.store.exhausted:
            # all searches run side by side: on a short budget none ends, but their
            # points all lie near the boundary, the best data for the fallback fit
            pairs = self._new_pairs(n - len(self.points))
            if not pairs:
                self._grow_pool()
                continue
            a = np.array([p[0] for p in pairs])
            b = np.array([p[1] for p in pairs])
            A, B = self.pool[a], self.pool[b]
            if self.valid:  # the far end with the near end's categories: a numeric line
                asked = len(A)
                A, B, a = self._same_categories(A, B, a)
                self.missed += asked - len(A)
                if self.missed > MISSES_PER_POINT * n + MISSES:
                    break  # the numeric columns seldom cross the boundary: give up
                if not len(A):
                    continue
            tau = np.empty((len(A), 0))
            lo_t, hi_t = bisect(self.store.ask, self.path, A, B, self.pool_y[a], steps, tau)
            finished = (hi_t - lo_t) <= 2.0 ** -steps * (1 + 1e-9)
            mid = self.path.at(A, B, (lo_t + hi_t) / 2, tau)
            for i in np.flatnonzero(finished):
                self.points.append(mid[i])
                self.ends.append((A[i], B[i]))

    def cover_categories(self, steps: int, rounds: int = 4) -> None:
        """Valid rows: for every one-hot column, a boundary point reached by switching a
        found segment's category to it. The column is switched on in both ends of a
        boundary segment found so far (its feature's other columns off); if the two
        ends then answer differently (2 queries), the search between them gives a point
        that differs from the segment's own in that category and in the numeric values
        only, which ties the column's weight to the segment's category's. (A category
        merely present in some boundary point is not enough: the points between rows of
        a few category combinations leave columns that always appear together, and
        their weights, free.) Each segment is first extended to the box's faces along
        its line, which keeps the switched crossing in reach. Up to ``rounds`` segments
        are tried per column, a different one each round."""
        order = self.rng.permutation(len(self.ends))
        if not len(order):
            return
        of = self.space.feature_of_column
        missing = [int(c) for c in np.flatnonzero(self.categorical)]
        for r in range(rounds):
            if self.store.exhausted or not missing:
                return
            pick = []
            for k, col in enumerate(missing):  # a segment not already of that category
                for t in range(len(order)):
                    e = int(order[(k + r + t) % len(order)])
                    if self.ends[e][0][col] != 1.0:
                        pick.append((col, e))
                        break
            if not pick:
                return
            A, B = self._stretch(np.array([self.ends[e][0] for _, e in pick]),
                                 np.array([self.ends[e][1] for _, e in pick]))
            for i, (col, _) in enumerate(pick):
                block = of == of[col]
                A[i, block], B[i, block] = 0.0, 0.0
                A[i, col], B[i, col] = 1.0, 1.0
            y = self.store.ask(np.vstack([A, B]))
            if len(y) < 2 * len(A):
                return
            ya, yb = y[:len(A)], y[len(A):]
            keep = np.flatnonzero(ya.astype(str) != yb.astype(str))
            if not len(keep):
                continue
            tau = np.empty((len(keep), 0))
            lo_t, hi_t = bisect(self.store.ask, self.path, A[keep], B[keep], ya[keep], steps,
                                tau)
            finished = (hi_t - lo_t) <= 2.0 ** -steps * (1 + 1e-9)
            mid = self.path.at(A[keep], B[keep], (lo_t + hi_t) / 2, tau)
            done = set()
            for f in np.flatnonzero(finished):
                self.points.append(mid[f])
                self.ends.append((A[keep][f], B[keep][f]))
                done.add(pick[int(keep[f])][0])
            missing = [c for c in missing if c not in done]

    def _stretch(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each line ``A[i] -> B[i]`` extended both ways to the box's faces: a category's
        switch moves the crossing along it, and a long line keeps it in reach."""
        D = B - A
        with np.errstate(divide="ignore", invalid="ignore"):
            low = np.where(D > 0, (self.lo - A) / D, np.where(D < 0, (self.hi - A) / D,
                                                                -np.inf))
            high = np.where(D > 0, (self.hi - A) / D, np.where(D < 0, (self.lo - A) / D,
                                                                 np.inf))
        t0 = np.minimum(low.max(axis=1), 0.0)[:, None]
        t1 = np.maximum(high.min(axis=1), 1.0)[:, None]
        return np.clip(A + t0 * D, self.lo, self.hi), np.clip(A + t1 * D, self.lo, self.hi)

    def _same_categories(self, A: np.ndarray, B: np.ndarray,
                         a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs whose far end, given the near end's categories, still answers the
        other class (one query each): the line between them moves numeric columns only,
        so every point of it is a valid row and the label changes on the boundary itself
        (a category switch would change it off the boundary)."""
        B = np.where(self.categorical, A, B)
        y = self.store.ask(B)
        keep = np.flatnonzero(np.asarray(y).astype(str) != self.pool_y[a[:len(y)]].astype(str))
        return A[keep], B[keep], a[keep]

    def grow_pool(self, size: int) -> None:
        """Ask uniform points of the box until the pool holds ``size`` (affinely
        independent, almost surely: the boundary points between them then span the
        boundary)."""
        while len(self.pool) < size and not self.store.exhausted:
            self._grow_pool(size - len(self.pool))

    def _grow_pool(self, n: int = 16) -> None:
        X = (self.space.sample_encoded(n, self.rng) if self.valid
             else self.rng.uniform(self.lo, self.hi, (n, len(self.lo))))
        y = self.store.ask(X)
        self.pool = np.vstack([self.pool, X[:len(y)]])
        self.pool_y = np.concatenate([self.pool_y, y])
        self.pool_size += len(y)

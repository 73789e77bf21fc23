"""Queries of a feature-discovery attack: rows that set one feature, and their answers.

A :class:`Prober` makes rows that leave every feature at a base row (all omitted where
the API takes incomplete inputs) but one; a :class:`Book` buys answers, never one row
twice, and finds them again by row. The tests on answers say when two come from the same
bin, when a feature's answers are affine in its value, and how finely its boundaries are
sought.

References: Tramèr et al., USENIX Security 2016, section 5.2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stealml.attacks.base import Querier
from stealml.exceptions import OracleCapabilityError
from stealml.space import CategoricalFeature, ContinuousFeature, FeatureSpace

__all__ = ["Book", "Prober", "error", "is_affine", "precision", "roundest", "same",
           "softmax_proba"]

SAME_RTOL = 1e-9  # two answers this close (relative, per class) come from the same bin
LINEAR_TOL = 1e-7  # log-ratios affine in a feature to this much: the feature is linear
ROUND_RATIO = 10.0  # a "round" value is a multiple of >= this times an interval's width


class Prober:
    """Rows that set one feature and leave the rest at the base row."""

    def __init__(self, space: FeatureSpace, missing: bool) -> None:
        self.space = space
        self.missing = missing
        self.widths = [f.width for f in space.features]
        base = np.full(space.n_encoded, np.nan)
        if not missing:  # no incomplete inputs: every feature at a fixed valid value
            for j, f in enumerate(space.features):
                cols = space.columns(j)
                base[cols] = 0.0
                if isinstance(f, CategoricalFeature):
                    base[cols.start] = 1.0
        self.base = base

    def at(self, j: int, value: float) -> np.ndarray:
        """The base row with feature ``j`` at ``value`` (category index, or scaled)."""
        row = self.base.copy()
        cols = self.space.columns(j)
        if isinstance(self.space.features[j], CategoricalFeature):
            row[cols] = 0.0
            row[cols.start + int(value)] = 1.0
        else:
            row[cols.start] = value
        return row


class Book:
    """Every answer bought, by row: nothing is asked twice."""

    def __init__(self, querier: Querier) -> None:
        self.querier = querier
        self.classes: np.ndarray | None = None
        self._rows: dict[bytes, int] = {}
        self._X: list[np.ndarray] = []
        self._P: list[np.ndarray] = []

    def ask(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Answers to the rows of ``X`` (new ones bought, as far as the budget goes)."""
        new, seen = [], set()
        for row in X:
            key = row.tobytes()
            if key not in self._rows and key not in seen:
                seen.add(key)
                new.append(row)
        if new and not self.querier.exhausted:
            asked, answers = self.querier.ask(np.vstack(new))
            for ans in answers:
                if ans.probabilities is None or np.isnan(ans.probabilities).any():
                    raise OracleCapabilityError("feature discovery needs every class "
                                                "probability in each answer")
                if self.classes is None:
                    self.classes = ans.classes
            if answers:
                P = np.vstack([np.asarray(a.probabilities, dtype=float) for a in answers])
                for row, p in zip(asked, P, strict=True):
                    self._rows[row.tobytes()] = len(self._X)
                    self._X.append(row)
                    self._P.append(p)
        keep = [i for i, row in enumerate(X) if row.tobytes() in self._rows]
        width = 0 if self.classes is None else len(self.classes)
        if not keep:
            return X[:0], np.empty((0, width))
        return X[keep], np.vstack([self._P[self._rows[X[i].tobytes()]] for i in keep])

    def answer(self, row: np.ndarray) -> np.ndarray | None:
        i = self._rows.get(row.tobytes())
        return None if i is None else self._P[i]

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._X:
            return np.empty((0, 0)), np.empty((0, 0))
        return np.vstack(self._X), np.vstack(self._P)


def precision(f: Any, epsilon: float) -> float:
    """Width (scaled unit) a boundary's interval is narrowed to: ``epsilon`` of the range
    (which is 2 wide), or the feature's grid step where finer, so that no two grid values
    are left in one interval."""
    eps = 2.0 * epsilon
    if f.granularity is not None:
        eps = min(eps, 2.0 * f.granularity / (f.max - f.min))
    return eps


def roundest(f: ContinuousFeature, lo: float, hi: float) -> float | None:
    """The scaled value of the roundest raw value strictly inside (lo, hi), if any: on a
    grid, its grid value; else a multiple of a power of ten at least ROUND_RATIO times
    the interval's width (a value that round, so near the boundary, is likely the
    boundary itself; any value is inside a wide enough interval)."""
    span = f.max - f.min
    a, b = f.min + (lo + 1.0) * span / 2.0, f.min + (hi + 1.0) * span / 2.0
    finest = math.floor(-math.log10(ROUND_RATIO * (b - a)))
    units = [(f.granularity, None)] if f.granularity is not None else [
        (10.0 ** -k, k) for k in range(-math.floor(math.log10(span)) - 1, finest + 1)]
    for unit, digits in units:
        x = math.floor(a / unit + 1.0) * unit
        if digits is not None:
            x = round(x, max(digits, 0))
        if a < x < b:
            return 2.0 * (x - f.min) / span - 1.0  # as FeatureSpace scales it
    return None


def same(p: np.ndarray, q: np.ndarray) -> bool:
    return bool(np.allclose(p, q, rtol=SAME_RTOL, atol=0.0))


def _log_ratios(p: np.ndarray) -> np.ndarray | None:
    if p.min() <= 0:
        return None
    lp = np.log(p)
    return np.asarray(lp[1:] - lp[0])


def is_affine(a: np.ndarray, m: np.ndarray, b: np.ndarray) -> bool:
    """Log-ratios at a range's ends and middle lie on a line, and not a flat one."""
    la, lm, lb = (_log_ratios(p) for p in (a, m, b))
    if la is None or lm is None or lb is None or same(a, b):
        return False
    scale = 1.0 + float(np.max(np.abs(np.r_[la, lm, lb])))
    return float(np.max(np.abs(la + lb - 2 * lm))) <= LINEAR_TOL * scale


def softmax_proba(theta: np.ndarray, A: np.ndarray) -> np.ndarray:
    Z = np.hstack([A, np.ones((len(A), 1))]) @ theta.T
    Z -= Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return np.asarray(E / E.sum(axis=1, keepdims=True))


def error(Q: np.ndarray, P: np.ndarray) -> float:
    """Largest difference between two sets of probability answers (0 for none)."""
    return float(np.max(np.abs(Q - P))) if len(P) else 0.0

"""Equation solving: each probability answer is an equation in the model's parameters.

For a binary logistic regression, p = sigmoid(w.x + b), so log(p1 / p0) = w.x + b: d + 1
answers at linearly independent points give w and b exactly (up to float precision).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 4.1.1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression

from stealml.attacks.base import Attack, Querier
from stealml.exceptions import UnsupportedModelError
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import FeatureSpace

__all__ = ["EquationSolving", "make_logistic_regression"]


def make_logistic_regression(coef: Any, intercept: Any,
                             classes: Any) -> LogisticRegression:
    """A fitted ``LogisticRegression`` with the given parameters."""
    model = LogisticRegression()
    model.coef_ = np.atleast_2d(np.asarray(coef, dtype=float))
    model.intercept_ = np.atleast_1d(np.asarray(intercept, dtype=float))
    model.classes_ = np.asarray(classes)
    model.n_features_in_ = model.coef_.shape[1]
    model.n_iter_ = np.zeros(1, dtype=np.int32)
    return model


class EquationSolving(Attack):
    """Exact extraction of a binary logistic regression from its probabilities.

    Parameters
    ----------
    n_queries : int, optional
        Equations to collect (default d + 1, the minimum). Saturated answers, and the
        few queries spent finding a good centre when the space's own centre is
        saturated, come on top.
    batch_size : int, optional
        Most queries sent in one request (default: all at once).
    spread : float
        Query points are drawn uniformly in a box around a centre point whose logit is
        moderate (the centre of the space, or a point found by bisection), this
        fraction of the space's half-width wide. Near the centre the answers are far from 0 and
        1, where the smaller probability (and so the logit) is exact to float precision;
        any linearly independent points determine the model.
    min_probability : float
        An answer whose smaller probability is below this is saturated (its logit is
        imprecise, or infinite after rounding): the point is asked again nearer the
        centre.
    max_shrink : int
        Rounds of re-asking saturated points, each 8 times nearer the centre.
    max_search : int
        When the centre of the space is saturated, pairs of points (a valid row of the
        space, a point of its box) asked to find one of the other class; the segment
        between them is then bisected.
    random_state : int or Generator, optional
        Seed of the query points.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (200, 5)); y = (X.sum(axis=1) > 0).astype(int)
    >>> oracle = LocalOracle(LogisticRegression().fit(X, y))
    >>> result = EquationSolving(random_state=0).run(oracle)
    >>> result.queries, result.complete
    (6, True)
    """

    name: ClassVar[str] = "equation-solving"
    requires: ClassVar[frozenset[str]] = frozenset({"probabilities"})

    def __init__(self, n_queries: int | None = None, batch_size: int | None = None,
                 spread: float = 0.1, min_probability: float = 1e-6, max_shrink: int = 8,
                 max_search: int = 32,
                 random_state: RandomState = None) -> None:
        self.n_queries = n_queries
        self.batch_size = batch_size
        self.spread = spread
        self.min_probability = min_probability
        self.max_shrink = max_shrink
        self.max_search = max_search
        self.random_state = random_state

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        return n_columns + 1

    @classmethod
    def supports(cls, model: Any) -> bool:
        classes = getattr(model, "classes_", None)
        return isinstance(model, LogisticRegression) and classes is not None \
            and len(classes) == 2

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        classes = oracle.classes
        if classes is not None and len(classes) != 2:
            raise UnsupportedModelError(
                f"attack {self.name!r} extracts binary logistic regression; the API has "
                f"{len(classes)} classes")
        rng = as_generator(self.random_state)
        lo, hi = oracle.space.encoded_bounds()
        free = hi > lo
        d = int(free.sum())
        eq = _Equations(querier, classes, self.min_probability)
        center = self._find_center(eq, oracle.space, rng)
        m = self.n_queries if self.n_queries is not None else d + 1
        half = (hi - lo) / 2 * self.spread
        n_more = max(m - eq.usable, 0)
        X = np.clip(center + rng.uniform(-half, half, size=(n_more, len(lo))), lo, hi)
        pending = np.where(free, X, lo)
        for _ in range(self.max_shrink + 1):
            if not len(pending) or querier.exhausted:
                break
            asked, _, ok = eq.ask(pending)
            pending = center + (asked[~ok] - center) / 8.0
        classes = eq.classes
        if classes is None or len(classes) != 2:
            raise UnsupportedModelError(f"attack {self.name!r} extracts binary logistic "
                                        "regression; the answers are not binary")
        X, z = eq.system()
        w = np.zeros(len(lo))
        A = np.hstack([X[:, free], np.ones((len(X), 1))])
        rank = int(np.linalg.matrix_rank(A)) if len(A) else 0
        b = 0.0
        if len(A):
            sol = np.linalg.lstsq(A, z, rcond=None)[0]
            w[free], b = sol[:-1], float(sol[-1])
        model = make_logistic_regression(w, [b], classes)
        info = {"equations": len(z), "unknowns": d + 1, "rank": rank,
                "max_residual": float(np.max(np.abs(A @ np.r_[w[free], b] - z)))
                if len(z) else None}
        return model, rank == d + 1, info

    def _find_center(self, eq: _Equations, space: FeatureSpace,
                     rng: np.random.Generator) -> np.ndarray:
        """A point whose logit is moderate (|z| <= 8), to draw the equations around.

        The centre of the space may be saturated (a large intercept, a feature with a
        steep weight). Then look for a point of the other class, and bisect the segment
        between them: z is linear, so it crosses 0 on it.
        """
        lo, hi = space.encoded_bounds()
        c = (lo + hi) / 2
        asked, z, ok = eq.ask(c[None, :])
        if not len(asked) or (ok[0] and abs(z[0]) <= _MODERATE):
            return c
        side, z_c = np.sign(z[0]), z[0]
        other, z_other = None, np.inf
        for _ in range(self.max_search):
            # valid rows of the space (where real inputs live) and points of its box
            cand = np.vstack([space.sample_encoded(1, rng),
                              rng.uniform(lo, hi, size=(1, len(lo)))])
            asked, z, ok = eq.ask(cand)
            good = np.flatnonzero(ok & (np.abs(z) <= _MODERATE))
            if len(good):
                return asked[good[0]]
            flip = np.flatnonzero(np.sign(z) == -side)
            if len(flip):
                other, z_other = asked[flip[0]], z[flip[0]]
                break
            if eq.querier.exhausted:
                break
        if other is None:
            return c
        # regula falsi on the (approximate, even when saturated) logits: z is linear
        a, b, za, zb = c, other, z_c, z_other
        mid = (a + b) / 2
        for _ in range(60):
            t = za / (za - zb) if np.isfinite(za) and np.isfinite(zb) else 0.5
            mid = a + min(max(t, 0.05), 0.95) * (b - a)
            asked, z, ok = eq.ask(mid[None, :])
            if not len(asked):
                break
            if ok[0] and abs(z[0]) <= _MODERATE:
                return mid
            if np.sign(z[0]) == side:
                a, za = mid, z[0]
            else:
                b, zb = mid, z[0]
        return mid


_MODERATE = 8.0  # |logit| of a good centre: p >= 3e-4, so the spread stays usable


class _Equations:
    """Queries points and keeps the usable (x, logit) equations."""

    def __init__(self, querier: Querier, classes: np.ndarray | None,
                 min_probability: float) -> None:
        self.querier = querier
        self.classes = classes
        self.min_probability = min_probability
        self.asked = 0
        self.usable = 0
        self._rows: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []

    def ask(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Query ``X``; returns the rows answered, their logits (approximate when the
        answer is saturated, +-inf when a probability is exactly 0) and which of them
        are usable equations."""
        asked, answers = self.querier.ask(X)
        if not answers:
            return asked, np.empty(0), np.zeros(0, dtype=bool)
        if self.classes is None:
            self.classes = answers[0].classes
        P = np.vstack([a.probabilities for a in answers if a.probabilities is not None])
        if P.shape[1] != 2:
            raise UnsupportedModelError(
                f"equation solving here extracts binary logistic regression; the answers "
                f"have {P.shape[1]} classes")
        with np.errstate(divide="ignore"):
            z = np.log(P[:, 1]) - np.log(P[:, 0])
        ok = np.isfinite(z) & (P.min(axis=1) >= self.min_probability)
        z = np.where(np.isfinite(z), z, np.where(P[:, 1] >= P[:, 0], np.inf, -np.inf))
        self.asked += len(asked)
        self.usable += int(ok.sum())
        self._rows.append(asked[ok])
        self._logits.append(z[ok])
        return asked, z, ok

    def system(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._rows:
            return np.empty((0, 0)), np.empty(0)
        return np.vstack(self._rows), np.concatenate(self._logits)

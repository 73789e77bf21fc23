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

__all__ = ["EquationSolving", "make_logistic_regression"]


def make_logistic_regression(coef: np.ndarray, intercept: np.ndarray,
                             classes: np.ndarray) -> LogisticRegression:
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
        Queries to spend on equations (default d + 1, the minimum).
    batch_size : int, optional
        Most queries sent in one request (default: all at once).
    spread : float
        Query points are drawn uniformly in a box around the centre of the space, this
        fraction of its half-width wide. Near the centre the answers are far from 0 and
        1, where the smaller probability (and so the logit) is exact to float precision;
        any linearly independent points determine the model.
    min_probability : float
        An answer whose smaller probability is below this is saturated (its logit is
        imprecise, or infinite after rounding): the point is asked again nearer the
        centre.
    max_shrink : int
        Rounds of re-asking saturated points, each 8 times nearer the centre.
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
                 random_state: RandomState = None) -> None:
        self.n_queries = n_queries
        self.batch_size = batch_size
        self.spread = spread
        self.min_probability = min_probability
        self.max_shrink = max_shrink
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
        m = self.n_queries if self.n_queries is not None else d + 1
        center, half = (lo + hi) / 2, (hi - lo) / 2 * self.spread
        X = np.where(free, rng.uniform(center - half, center + half, size=(m, len(lo))), lo)
        X, z, classes = self._equations(oracle, querier, X, center, classes)
        if classes is None or len(classes) != 2:
            raise UnsupportedModelError(f"attack {self.name!r} extracts binary logistic "
                                        "regression; the answers are not binary")
        w = np.zeros(len(lo))
        A = np.hstack([X[:, free], np.ones((len(X), 1))])
        rank = int(np.linalg.matrix_rank(A)) if len(A) else 0
        if len(A):
            sol = np.linalg.lstsq(A, z, rcond=None)[0]
            w[free], b = sol[:-1], float(sol[-1])
        else:
            b = 0.0
        model = make_logistic_regression(w, [b], classes)
        info = {"equations": int(len(z)), "unknowns": d + 1, "rank": rank,
                "max_residual": float(np.max(np.abs(A @ np.r_[w[free], b] - z)))
                if len(z) else None}
        return model, rank == d + 1, info

    def _equations(self, oracle: Oracle, querier: Querier, X: np.ndarray,
                   center: np.ndarray, classes: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Query ``X``; re-ask saturated points nearer the centre. Returns usable rows."""
        rows: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        pending = X
        for _ in range(self.max_shrink + 1):
            if not len(pending) or querier.exhausted:
                break
            asked, answers = querier.ask(pending)
            if not answers:
                break
            classes = answers[0].classes if classes is None else classes
            P = np.vstack([a.probabilities for a in answers if a.probabilities is not None])
            with np.errstate(divide="ignore"):
                z = np.log(P[:, 1]) - np.log(P[:, 0])
            ok = np.isfinite(z) & (P.min(axis=1) >= self.min_probability)
            rows.append(asked[ok])
            logits.append(z[ok])
            pending = center + (asked[~ok] - center) / 8.0
        if not rows:
            return np.empty((0, len(center))), np.empty(0), classes
        return np.vstack(rows), np.concatenate(logits), classes

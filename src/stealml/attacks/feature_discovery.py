"""Feature-extraction discovery: steal a model that sits behind server-side binning.

Amazon ML one-hot encoded categorical features and cut numeric ones into k quantile bins
learned from the training data, then ran a softmax (or logistic) regression over those
columns. The attacker controls only the raw features. The attack

1. asks a base row (every feature omitted where the API takes incomplete inputs, else a
   fixed valid row) and, for each feature alone, every category and the numeric range's
   two ends and middle: a numeric feature whose answers are affine in its value is taken
   linearly, any other one is binned;
2. finds each binned feature's bin boundaries by bisection to ``epsilon`` of its range
   (the paper's line search), where the answer changes while the other features stay
   fixed; a boundary is put on an interval's upper end when that is a value much rounder
   than the interval, as quantiles of real data often fall on one;
3. builds the discovered feature map (:class:`DiscoveredExtraction`) and solves for the
   model over it, every answer bought so far an equation (the discovery answers are
   re-used);
4. extract-and-test of the service's hidden choices: the softmax solution is tested on a
   few fresh complete rows; if it does not reproduce them, the target is taken to be
   one-vs-rest, more rows are asked and a one-vs-rest model is solved instead. Whether an
   omitted feature has its own predictor (BigML) or is encoded as zeros (Amazon) is told
   by the linear features' answers (``info["missing_predictors"]``); the extraction keeps
   a missing-indicator column per feature either way; and
5. with a ``tolerance``, narrows the boundaries where they matter (see
   :mod:`stealml.attacks._discovery_refine`): the solved model says how often each
   boundary's two bins label a uniform input differently; one query narrows a boundary of
   every binned feature at once (the known model tells which side each value fell on),
   until the share of uniform inputs the boundaries can still label wrongly is below the
   tolerance and every boundary on an integer grid is exact. Without one (``None``),
   boundaries are searched to the feature's grid and a round value inside each final
   interval is asked, as before the refinement existed.

The stolen model is a ``Pipeline`` of the discovered extraction and a scikit-learn
``LogisticRegression`` (or ``OneVsRestClassifier``) over model-space rows of the API.

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 5.2 (Amazon, Table 7) and 5.3 (extract-and-test).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from stealml.attacks._discovery_map import DiscoveredExtraction
from stealml.attacks._discovery_queries import (
    Book,
    Prober,
    error,
    is_affine,
    precision,
    roundest,
    same,
    softmax_proba,
)
from stealml.attacks._discovery_refine import (
    Boundary,
    is_round,
    refine,
    split_point,
    weigh,
)
from stealml.attacks.base import Attack, Querier
from stealml.attacks.equations.logistic import (
    fit_cross_entropy,
    solve_log_ratios,
    to_logistic_regression,
)
from stealml.attacks.equations.ovr import make_one_vs_rest, solve_ovr
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import CategoricalFeature, ContinuousFeature, FeatureSpace

__all__ = ["DiscoveredExtraction", "FeatureDiscovery"]

TEST_TOL = 1e-6  # a model class reproduces the test answers to this much, or it is wrong


class FeatureDiscovery(Attack):
    """Discover an API's feature extraction (quantile bins, one-hot), then solve for its
    logistic model over it.

    Parameters
    ----------
    epsilon : float
        Bin boundaries are first found to this fraction of a feature's range (paper: 1e-3)
        by line search, one feature a query.
    tolerance : float or None
        Then boundaries are narrowed, several features a query, until the share of
        uniform inputs they may label wrongly is at most this (a bound; 0: to float
        precision). None: no narrowing, the paper's attack.
    model_class : {"softmax", "ovr"}, optional
        The service's model class; by default it is found by extract-and-test.
    test_queries : int
        Fresh uniform rows asked to test the softmax hypothesis (then used as equations);
        none with two classes, where softmax and one-vs-rest are the same model.
    min_probability : float
        Answers with a smaller probability give no equation (saturated).
    batch_size : int, optional
        Most queries in one request.
    random_state : int or Generator, optional
        Seed of the test rows.

    Examples
    --------
    >>> from stealml.oracles import LocalOracle
    >>> from stealml.space import FeatureSpace
    >>> space = FeatureSpace.continuous(2)
    >>> ex = DiscoveredExtraction(["bins", "bins"], [1, 1], [[-0.3, 0.4], [0.1]])
    >>> rng = np.random.default_rng(0); X = rng.uniform(-1, 1, (300, 2))
    >>> target = Pipeline([("extraction", ex), ("model", LogisticRegression())]).fit(
    ...     X, X[:, 0] + X[:, 1] > 0)
    >>> result = FeatureDiscovery(random_state=0).run(LocalOracle(target, space))
    >>> result.info["model_class"], [round(e, 2) for e in result.info["features"][0]["edges"]]
    ('softmax', [-0.3, 0.4])
    """

    name: ClassVar[str] = "feature-discovery"
    requires: ClassVar[frozenset[str]] = frozenset({"probabilities"})

    def __init__(self, epsilon: float = 1e-3, tolerance: float | None = 1e-6,
                 model_class: str | None = None, test_queries: int = 8,
                 min_probability: float = 1e-12, batch_size: int | None = None,
                 random_state: RandomState = None) -> None:
        self.epsilon = epsilon
        self.tolerance = tolerance
        self.model_class = model_class
        self.test_queries = test_queries
        self.min_probability = min_probability
        self.batch_size = batch_size
        self.random_state = random_state

    @classmethod
    def supports(cls, model: Any) -> bool:
        """A logistic model behind a feature extraction (a ``Pipeline`` ending in one)."""
        if not isinstance(model, Pipeline):
            return False
        last = model.steps[-1][1]
        return isinstance(last, LogisticRegression) or (
            isinstance(last, OneVsRestClassifier)
            and isinstance(last.estimator, LogisticRegression))

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        # not knowable before the bins are found: Amazon's default of 10 bins per column
        return (n_classes or 2) * (10 * n_columns + 1)

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        if self.model_class not in (None, "softmax", "ovr"):
            raise ConfigurationError(f"model class must be softmax or ovr, not "
                                     f"{self.model_class!r}")
        if not self.epsilon > 0:
            raise ConfigurationError(f"epsilon must be positive, not {self.epsilon}")
        if self.tolerance is not None and not self.tolerance >= 0:
            raise ConfigurationError(f"tolerance must be >= 0 or None, not {self.tolerance}")
        space = oracle.space
        rng = as_generator(self.random_state)
        book = Book(querier)
        probe = Prober(space, oracle.policy.incomplete != "reject")
        kinds, found = self._discover(space, probe, book)
        bounds = self._settle(space, found, probe, book)
        X, P = book.data()
        if book.classes is None or not len(X):
            raise UnsupportedModelError("no answer was bought: the budget allows no query")
        classes = np.asarray(book.classes)
        ex = _extraction(kinds, probe, bounds)
        info: dict[str, Any] = {
            "missing_queries": probe.missing, "discovery_queries": len(X),
            "missing_predictors": _missing_predictors(kinds, probe, book)}
        kind = self.model_class or "softmax"
        if self.model_class is None and len(classes) > 2:  # two classes: the same model
            theta, _ = self._softmax(ex.transform(X), P)
            T_asked, T_P = book.ask(space.sample_encoded(self.test_queries, rng))
            err = error(softmax_proba(theta, ex.transform(T_asked)), T_P)
            info["softmax_test_error"] = err
            kind = "softmax" if err <= TEST_TOL else "ovr"
        model, exact, extra = self._solve(kind, space, ex, book, rng)
        if self.tolerance is not None:
            info["coarse_queries"] = len(book.data()[0])
            info["missed_bins"] = info["narrowed"] = 0
            while True:
                hidden, moves = refine(Pipeline([("extraction", ex), ("model", model)]),
                                       space, probe, book, bounds, self.tolerance, rng)
                info["narrowed"] += moves
                if hidden:  # a bin missed inside an interval: search it again
                    info["missed_bins"] += len(hidden) // 2
                    bounds += self._settle(space, self._bisect(space, hidden, probe, book),
                                           probe, book)
                ex = _extraction(kinds, probe, bounds)
                model, exact, extra = self._solve(kind, space, ex, book, rng)
                if not hidden:
                    break
        else:  # the doubt the line search leaves, as the refinement would weigh it
            weigh(Pipeline([("extraction", ex), ("model", model)]), space, bounds, rng)
        info.update(extra)
        info.update({"features": ex.describe(space.names), "columns": ex.n_columns,
                     "doubt": sum(b.doubt for b in bounds), "model_class": kind,
                     "exact": exact})
        stolen = Pipeline([("extraction", ex), ("model", model)])
        return stolen, not book.querier.exhausted, info

    # -- discovery ------------------------------------------------------------------------
    def _discover(self, space: FeatureSpace, probe: Prober,
                  book: Book) -> tuple[list[str], list[tuple[int, float, float]]]:
        """Each feature's kind, and the intervals (feature, lo, hi) of its boundaries."""
        numeric = [j for j, f in enumerate(space.features)
                   if isinstance(f, ContinuousFeature) and f.max > f.min]
        first = [probe.base]
        for j, f in enumerate(space.features):
            if isinstance(f, CategoricalFeature):
                first += [probe.at(j, k) for k in range(len(f.values))]
        first += [probe.at(j, u) for j in numeric for u in (-1.0, 0.0, 1.0)]
        if probe.missing:  # a constant feature: present once, to tell it from missing
            first += [probe.at(j, 0.0) for j, f in enumerate(space.features)
                      if isinstance(f, ContinuousFeature) and f.max == f.min]
        book.ask(np.vstack(first))
        kinds = ["onehot" if isinstance(f, CategoricalFeature) else "bins"
                 for f in space.features]
        pending: list[tuple[int, float, float]] = []
        for j in numeric:
            ends = [book.answer(probe.at(j, u)) for u in (-1.0, 0.0, 1.0)]
            if any(e is None for e in ends):
                continue  # the budget ran out: taken as one bin
            a, m, b = (np.asarray(e) for e in ends)
            if is_affine(a, m, b):
                kinds[j] = "linear"
            else:
                pending += [(j, -1.0, 0.0), (j, 0.0, 1.0)]
        return kinds, self._bisect(space, pending, probe, book)

    def _bisect(self, space: FeatureSpace, pending: list[tuple[int, float, float]],
                probe: Prober, book: Book) -> list[tuple[int, float, float]]:
        """Line search, one feature a row: the intervals narrower than epsilon (or the
        feature's grid step) whose ends are answered differently. Every search's next
        middle is asked in one batch a round."""
        # narrowed later where it matters: epsilon alone, else down to the grid too
        eps = {j: 2.0 * self.epsilon if self.tolerance is not None
               else precision(space.features[j], self.epsilon) for j, _, _ in pending}
        ends = [probe.at(j, v) for j, lo, hi in pending for v in (lo, hi)
                if book.answer(probe.at(j, v)) is None]
        if ends:  # an interval cut by a refinement query: its ends alone
            book.ask(np.vstack(ends))
        found: list[tuple[int, float, float]] = []
        while pending and not book.querier.exhausted:
            split, mids = [], []
            for j, lo, hi in pending:
                pa, pb = book.answer(probe.at(j, lo)), book.answer(probe.at(j, hi))
                if pa is None or pb is None or same(pa, pb):
                    continue
                if hi - lo <= eps[j]:
                    found.append((j, lo, hi))
                    continue
                split.append((j, lo, hi))
                mids.append(probe.at(j, (lo + hi) / 2))
            if mids:
                book.ask(np.vstack(mids))
            pending = [piece for j, lo, hi in split
                       for piece in ((j, lo, (lo + hi) / 2), (j, (lo + hi) / 2, hi))]
        return sorted(found)

    def _settle(self, space: FeatureSpace, found: list[tuple[int, float, float]],
                probe: Prober, book: Book) -> list[Boundary]:
        """Boundaries from the final intervals. Quantile bins of real data often fall on
        round values (a data value, or the feature's integer grid), where test rows sit
        too: a boundary is put on an interval's upper end if that is much rounder than
        the interval (a multiple of a power of ten at least 10 times its width). Without
        refinement, the grid value inside each interval, else such a round value, is
        asked too, and the boundary put on it when it is in the upper bin."""
        bounds = [Boundary(j, lo, hi) for j, lo, hi in found]
        asks = []
        for b in bounds:
            f = cast(ContinuousFeature, space.features[b.feature])
            g = roundest(f, b.lo, b.hi)
            if g is None:
                b.at_hi = is_round(f, b.hi, b.hi - b.lo)
            elif self.tolerance is None:
                asks.append((b, g, probe.at(b.feature, g)))
        if asks:
            book.ask(np.vstack([x for _, _, x in asks]))
        for b, g, x in asks:
            pg, plo = book.answer(x), book.answer(probe.at(b.feature, b.lo))
            if pg is not None and plo is not None:
                if same(pg, plo):
                    b.lo = g
                else:
                    b.hi, b.at_hi = g, True
        for b in bounds:  # on a grid: exact once no grid value is left strictly inside
            f = cast(ContinuousFeature, space.features[b.feature])
            b.exact = f.granularity is not None and split_point(f, b.lo, b.hi) is None
        return bounds

    # -- solving --------------------------------------------------------------------------
    def _solve(self, kind: str, space: FeatureSpace, ex: DiscoveredExtraction, book: Book,
               rng: np.random.Generator) -> tuple[Any, bool, dict[str, Any]]:
        """The model of class ``kind`` over ``ex``, every answer bought an equation."""
        if kind == "ovr":
            return self._ovr(space, ex, book, rng, len(np.asarray(book.classes)))
        X, P = book.data()
        theta, exact = self._softmax(ex.transform(X), P)
        return to_logistic_regression(theta, np.asarray(book.classes)), exact, {}

    def _softmax(self, A: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, bool]:
        """Softmax parameters over the discovered columns: the log-ratio solve, checked
        on every equation; a cross-entropy fit where it does not reproduce them."""
        free = np.ones(A.shape[1], dtype=bool)
        theta, _ = solve_log_ratios(A, P, free, self.min_probability)
        ok = P.min(axis=1) >= self.min_probability
        if ok.any() and error(softmax_proba(theta, A[ok]), P[ok]) <= TEST_TOL:
            return theta, True
        return fit_cross_entropy(A, P, init=theta), False

    def _ovr(self, space: FeatureSpace, ex: DiscoveredExtraction, book: Book,
             rng: np.random.Generator, c: int) -> tuple[Any, bool, dict[str, Any]]:
        """One-vs-rest over the discovered columns: enough fresh rows that every
        parameter is fixed (c - 1 equations a row), then variable projection."""
        X, _ = book.data()
        rank = int(np.linalg.matrix_rank(np.hstack([ex.transform(X), np.ones((len(X), 1))])))
        need = math.ceil(c * (rank + 1) / (c - 1)) - len(X) + self.test_queries
        if need > 0:
            book.ask(space.sample_encoded(need, rng))
        X, P = book.data()
        A = ex.transform(X)
        theta, info = solve_ovr(A, P, np.ones(A.shape[1], dtype=bool), restarts=1)
        model = make_one_vs_rest(theta, np.asarray(book.classes))
        err = error(model.predict_proba(A), P)
        return model, err <= TEST_TOL, {"ovr_fit_error": err,
                                        "ovr_residual": info["residual"]}


def _extraction(kinds: list[str], probe: Prober,
                bounds: list[Boundary]) -> DiscoveredExtraction:
    edges: list[list[float]] = [[] for _ in kinds]
    for b in sorted(bounds, key=lambda b: b.edge):
        edges[b.feature].append(b.edge)
    return DiscoveredExtraction(kinds, probe.widths, edges, missing=probe.missing)


def _missing_predictors(kinds: list[str], probe: Prober, book: Book) -> bool | None:
    """Whether omitting a feature differs from its scaled value 0 (the zeros an omitted
    feature is encoded as at Amazon): a missing-value predictor (BigML). Told only by a
    feature taken linearly: for a one-hot block the two are the same model. None when
    untold."""
    if not probe.missing:
        return None
    told = []
    for j, kind in enumerate(kinds):
        a, b = book.answer(probe.base), book.answer(probe.at(j, 0.0))
        if kind == "linear" and a is not None and b is not None:
            told.append(not same(a, b))
    return any(told) if told else None

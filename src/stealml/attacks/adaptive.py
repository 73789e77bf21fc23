"""Adaptive retraining (active learning): r rounds of querying where the local model is
least sure, then retraining it.

Two ways to pick each round's queries:

* ``"uncertainty"``, the paper's: of a pool of uniform rows, the ones the local model
  scores closest to its decision boundary;
* ``"boundary"`` (default, ours): points exactly on the local model's boundary, found by
  line searches against the local model itself (free: no query), between random pairs
  of rows it labels differently (for two classes, half of the second rows of each pair
  near the box's main diagonal, see :func:`diagonal_rows`, in spaces of 4 or more
  continuous features; for more classes, both ends rows at the box's faces, see
  :func:`face_rows`), then spread out by farthest-point selection, away from
  each other and from every point asked before, so that neither one round nor the
  rounds together spend their queries on one stretch of the boundary (while the local
  model is still wrong, its boundary changes little from round to round). Every answer
  then tells on which side of the true boundary a point of the current one lies. While
  every answer is of one class, a round explores: half of it the pool rows farthest
  from all the points asked, half rows near the main diagonal, spread the same way (for
  two classes, a round of one row, as small budgets have, takes either at random).

The diagonal matters where one class holds a corner of the box that uniform rows
rarely reach and the data's rows crowd into: Breast Cancer's RBF SVMs label 1.4-2.6%
of the box benign, all of it about the corner where every feature is low, where 63% of
the test rows lie. A local model fit on boundary points found from uniform pairs only
labelled that corner malignant (R_test 0.58-0.63 on one seed in 8). With ten classes
(softmax on Digits, 64 features) the diagonal pairs did worse (R_test at alpha 10,
seeds 0-1: 5.6e-3 -> 1.0e-2), and so are left to two classes. With more classes, line searches
between two uniform rows put the boundary points nearer the box's centre than uniform
rows (Digits: mean squared norm 20.2 against 25.7), while the test rows lie farther out
still (42.9); pairs of face rows put them where the data are (Digits, seeds 0-2, alpha
10: R_test 1.3e-2 -> 6.2e-4, Adult-race 3.0e-3 -> 5.7e-4).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 6, strategy (3); Settles, "Active Learning Literature
Survey", 2009 (uncertainty sampling).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from stealml.attacks._labels import LabelStore, Path, bisect
from stealml.attacks._selection import fit, select_model
from stealml.attacks.retraining import Retraining, opposite_pairs
from stealml.exceptions import ConfigurationError
from stealml.oracles.base import Oracle
from stealml.random import RandomState
from stealml.space import ContinuousFeature
from stealml.validation import check_positive_int

__all__ = ["RetrainAdaptive", "margin"]

LOCAL_STEPS = 24  # bisection steps against the local model (free)
RESELECT_BELOW = 2000  # with fewer answers, extract-and-test runs again every round
WIDEST_BELOW = 1.0  # budgets under this many x unknowns take the widest RBF kernel within 1 SE
PROJECTED = 16  # farthest-point selection works in this many random directions
FACE_SHARE = 0.5  # of the continuous features of a face row, at their min or max
DIAGONAL_SHARE = 0.5  # of the rows paired for the local line searches, near the diagonal
DIAGONAL_MIN_FEATURES = 4  # ... in spaces of at least this many continuous features
DIAGONAL_SPREAD = 0.15  # sd of each feature about the row's level, a share of its range


def margin(model: Any, X: np.ndarray) -> np.ndarray:
    """How sure ``model`` is of each row: |decision| for two classes, else the gap
    between the two highest scores (0 on the boundary)."""
    if hasattr(model, "decision_function"):
        scores = np.asarray(model.decision_function(X), dtype=float)
    elif hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X), dtype=float)
    else:
        return np.zeros(len(X))
    if scores.ndim == 1:
        return np.abs(scores)
    if scores.shape[1] == 1:
        return np.abs(scores[:, 0])
    top = np.sort(scores, axis=1)
    return np.asarray(top[:, -1] - top[:, -2])


def farthest_points(X: np.ndarray, k: int, rng: np.random.Generator,
                    asked: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``k`` rows of ``X`` picked greedily, each the farthest from those
    already picked and from the rows of ``asked`` (the first at random if none)."""
    if k >= len(X):
        return np.arange(len(X))
    if asked is None:
        asked = np.empty((0, X.shape[1]))
    if X.shape[1] > PROJECTED:  # distances are kept well enough by a random projection
        projection = rng.normal(size=(X.shape[1], PROJECTED)) / np.sqrt(PROJECTED)
        X, asked = X @ projection, asked @ projection
    dist = np.full(len(X), np.inf)
    for start in range(0, len(asked), 256):  # nearest asked row, a block at a time
        block = asked[start:start + 256]
        gaps = (X ** 2).sum(axis=1)[:, None] - 2 * X @ block.T + (block ** 2).sum(axis=1)
        dist = np.minimum(dist, np.sqrt(np.maximum(gaps.min(axis=1), 0.0)))
    chosen: list[int] = []
    for _ in range(k):
        i = int(rng.integers(len(X))) if np.isinf(dist).all() else int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(X - X[i], axis=1))
    return np.array(chosen, dtype=int)


class RetrainAdaptive(Retraining):
    """Adaptive retraining: uniform rows first, then rounds of queries near the local
    model's boundary, retraining after each.

    Parameters
    ----------
    rounds : int
        Rounds of adaptive queries after the first uniform batch.
    selection : {"boundary", "uncertainty"}
        How a round picks its queries (see the module docstring); "uncertainty" is the
        paper's.
    initial_fraction : float
        Share of the queries spent on uniform rows before the first round (at least
        d + 1 of them, or half the budget if that is less).
    pool_factor : int
        Candidates drawn per query a round buys.
    reselect_below : int
        With fewer answers, extract-and-test runs again every round (else only at the
        first and middle rounds; the others refit the chosen model).
    widest_below : float
        With a budget under this many times the unknowns (fewer queries than
        unknowns, by default), extract-and-test takes the widest RBF kernel scoring
        within one standard error of the best: a handful of answers cannot tell a
        wiggly boundary from a smooth one, and far from them a narrow kernel answers
        its intercept's class.
    **kwargs
        See :class:`~stealml.attacks.retraining.Retraining`.

    References: Tramèr et al., USENIX Security 2016, section 6, strategy (3).

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 2)); y = X[:, 0] > X[:, 1] ** 2
    >>> result = RetrainAdaptive(model="rbf-svm", n_queries=150, random_state=0).run(
    ...     LocalOracle(SVC().fit(X, y)))
    >>> result.queries, result.info["rounds_run"]
    (150, 10)
    """

    name: ClassVar[str] = "retrain-adaptive"

    def __init__(self, model: str = "auto", n_queries: int | None = None, rounds: int = 10,
                 selection: str = "boundary", initial_fraction: float = 0.1,
                 pool_factor: int = 4, reselect_below: int = RESELECT_BELOW,
                 widest_below: float = WIDEST_BELOW, hidden_units: int = 20,
                 valid_paths: bool = True,
                 ignore_probabilities: bool = False, batch_size: int | None = None,
                 random_state: RandomState = None) -> None:
        super().__init__(model=model, n_queries=n_queries, hidden_units=hidden_units,
                         valid_paths=valid_paths, ignore_probabilities=ignore_probabilities,
                         batch_size=batch_size, random_state=random_state)
        self.rounds = rounds
        self.selection = selection
        self.initial_fraction = initial_fraction
        self.pool_factor = pool_factor
        self.reselect_below = reselect_below
        self.widest_below = widest_below

    def _check(self) -> int:
        if self.selection not in ("boundary", "uncertainty", "mixed"):
            raise ConfigurationError(f"selection must be boundary, uncertainty or mixed, not "
                                     f"{self.selection!r}")
        if not 0 < self.initial_fraction <= 1:
            raise ConfigurationError(f"initial_fraction must be in (0, 1], not "
                                     f"{self.initial_fraction}")
        check_positive_int(self.pool_factor, "pool_factor")
        if not self.widest_below >= 0:
            raise ConfigurationError(f"widest_below must be at least 0, not {self.widest_below}")
        return check_positive_int(self.rounds, "rounds")

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        rounds = self._check()
        space = oracle.space
        # small budgets cannot be adaptive for long: then half of them go uniform
        first = max(2, math.ceil(m * self.initial_fraction), min(m // 2, space.n_encoded + 1))
        store.ask(space.sample_encoded(min(m, first), rng))
        path = Path(space, valid=self.valid_paths)
        binary = oracle.classes is not None and len(oracle.classes) == 2
        model: Any = None
        done = 0
        for r in range(rounds):
            left = m - len(store)
            if left <= 0 or store.exhausted:
                break
            X, y = store.data()
            if r in (0, rounds // 2) or len(X) < self.reselect_below:
                model, _ = select_model(X, y, self.families(), rng, self.hidden_units,
                                        widest=self._widest(oracle, m))
            else:
                model = fit(model, X, y, warm=True)
            n = math.ceil(left / (rounds - r))
            store.ask(self._pick(model, space, path, n, rng, X, y, binary))
            done += 1
        return {"rounds_run": done, "selection_rule": self.selection}

    def _widest(self, oracle: Oracle, m: int) -> bool:
        classes = oracle.classes
        unknowns = self.n_unknowns(oracle.space.n_encoded,
                                   None if classes is None else len(classes))
        return m < self.widest_below * unknowns

    def _pick(self, model: Any, space: Any, path: Path, n: int, rng: np.random.Generator,
              X: np.ndarray, y: np.ndarray, binary: bool = False) -> np.ndarray:
        pool = space.sample_encoded(max(self.pool_factor * n, 64), rng)
        if self.selection == "uncertainty":
            return pool[np.argsort(margin(model, pool), kind="stable")[:n]]
        if self.selection == "mixed":  # half the round from each rule
            order = np.argsort(margin(model, pool), kind="stable")
            k = n // 2
            return np.vstack([pool[order[:n - k]],
                              self._on_boundary(model, space, path, pool[order[n - k:]], k,
                                                rng, X, y, binary)])
        return self._on_boundary(model, space, path, pool, n, rng, X, y, binary)

    def _on_boundary(self, model: Any, space: Any, path: Path, pool: np.ndarray, n: int,
                     rng: np.random.Generator, X: np.ndarray, y: np.ndarray,
                     binary: bool = False) -> np.ndarray:
        """``n`` points on the local model's boundary, spread out (see the module
        docstring); near rare classes and unsure pool rows while little boundary is
        known. ``binary``: the API has two classes (see :func:`_explore`)."""
        if n <= 0:
            return np.empty((0, pool.shape[1]))
        if len(np.unique(y.astype(str))) < 2:  # one class answered so far: explore
            return _explore(space, pool, n, rng, X, odd_diagonal=binary)
        found = self._local_boundary(model, space, path, pool, rng,
                                     two_classes=len(np.unique(y.astype(str))) == 2)
        if len(found) >= n:
            return found[farthest_points(found, n, rng, X)]
        # little boundary yet: look around the rarest class's points, and where unsure
        near = _near_rare(path, X, y, pool, (n - len(found) + 1) // 2, rng)
        rest = pool[np.argsort(margin(model, pool), kind="stable")[:n - len(found) - len(near)]]
        return np.vstack([found, near, rest])

    @staticmethod
    def _local_boundary(model: Any, space: Any, path: Path, pool: np.ndarray,
                        rng: np.random.Generator, two_classes: bool = True) -> np.ndarray:
        """Points on the local model's boundary between rows it labels differently
        (each on the side of the first row's label, within 2^-24 of the boundary). Two
        classes: the pool rows and as many more, half of them near the box's main
        diagonal in spaces of 4 or more continuous features; more classes: rows at the
        box's faces (:func:`face_rows`) instead of the pool, twice as many."""
        if not two_classes:
            other = face_rows(space, len(pool), rng)
            pool = face_rows(space, len(pool), rng)
        else:
            other = space.sample_encoded(len(pool), rng)
            continuous = sum(isinstance(f, ContinuousFeature) for f in space.features)
            if continuous >= DIAGONAL_MIN_FEATURES:
                k = int(len(pool) * DIAGONAL_SHARE)
                other[:k] = diagonal_rows(space, k, rng)
        both = np.vstack([pool, other])
        labels = np.asarray(model.predict(both))
        a, b = opposite_pairs(labels, len(pool), rng)
        if not len(a):
            return np.empty((0, pool.shape[1]))
        tau = path.thresholds(len(a), rng)
        lo, hi = bisect(model.predict, path, both[a], both[b], labels[a], LOCAL_STEPS, tau)
        return path.at(both[a], both[b], (lo + hi) / 2, tau)


def face_rows(space: Any, n: int, rng: np.random.Generator,
              share: float = FACE_SHARE) -> np.ndarray:
    """``n`` encoded rows at the faces of the feature box: uniform rows whose continuous
    features are each, with probability ``share``, at their min or max (either end
    equally); categories uniform.

    Rows of real data sets sit far from the box's centre (Digits: 60% of the test rows'
    pixels within 10% of an end of their range, against 20% for uniform rows), and the
    points of line searches between two uniform rows lie nearer the centre still.
    """
    raw = space.sample(n, rng)
    for j, f in enumerate(space.features):
        if isinstance(f, ContinuousFeature):
            x = np.asarray(raw[:, j], dtype=float)
            snap = rng.uniform(size=n) < share
            x[snap] = np.where(rng.uniform(size=snap.sum()) < 0.5, f.min, f.max)
            raw[:, j] = [float(v) for v in x]
    return np.asarray(space.encode(raw, allow_missing=False))


def _explore(space: Any, pool: np.ndarray, n: int, rng: np.random.Generator,
             X: np.ndarray, odd_diagonal: bool = False) -> np.ndarray:
    """``n`` rows where nothing was asked yet: half the pool rows farthest from every
    point asked, half rows near the box's main diagonal (spread out the same way). With
    ``odd_diagonal`` (two classes), the odd row of an odd ``n`` is either, at random, so
    that a round of one row explores near the diagonal too; else it is a pool row.

    The diagonal is a two-class bet (a class that holds the data's rows but little of
    the box); for Iris (3 classes, 12 runs at alpha 1 and 2) one-row rounds near it lost
    a class in one run and gained in none."""
    k = n // 2 + int(odd_diagonal and n % 2 == 1 and rng.uniform() < 0.5)
    diagonal = diagonal_rows(space, max(4 * k, 64), rng)
    return np.vstack([pool[farthest_points(pool, n - k, rng, X)],
                      diagonal[farthest_points(diagonal, k, rng, X)]])


def diagonal_rows(space: Any, n: int, rng: np.random.Generator,
                  spread: float = DIAGONAL_SPREAD) -> np.ndarray:
    """``n`` encoded rows near the feature box's main diagonal: each row draws one
    uniform level in [0, 1], and every continuous feature lies at that share of its
    range, give or take ``spread`` (snapped to its granularity); categories uniform.

    The features of a real record tend to be low or high together (sizes, counts,
    severities: Breast Cancer's correlate by +0.61 on average, Diabetes' by +0.13), so
    its rows, and a class that holds them, lie nearer this diagonal than uniform rows.
    """
    raw = space.sample(n, rng)
    level = rng.uniform(size=n)
    for j, f in enumerate(space.features):
        if isinstance(f, ContinuousFeature):
            x = f.min + np.clip(level + spread * rng.normal(size=n), 0, 1) * (f.max - f.min)
            if f.granularity is not None:
                x = np.minimum(f.min + np.round((x - f.min) / f.granularity) * f.granularity,
                               f.max)
            raw[:, j] = [float(v) for v in x]
    return np.asarray(space.encode(raw, allow_missing=False))


def _near_rare(path: Path, X: np.ndarray, y: np.ndarray, pool: np.ndarray, k: int,
               rng: np.random.Generator) -> np.ndarray:
    """``k`` points a short way from answered points of the rarest class towards pool
    rows: where a class is rare, its region is small and easily missed."""
    text = y.astype(str)
    values, counts = np.unique(text, return_counts=True)
    anchors = X[text == values[np.argmin(counts)]]
    if k <= 0 or not len(anchors):
        return np.empty((0, pool.shape[1]))
    A = anchors[rng.integers(len(anchors), size=k)]
    B = pool[rng.integers(len(pool), size=k)]
    return path.at(A, B, rng.uniform(0.0, 0.3, size=k), path.thresholds(k, rng))

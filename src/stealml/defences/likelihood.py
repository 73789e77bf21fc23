"""PRADA's likelihood test: how probable the client's rows are under the owner's data.

The owner's rows, grouped by the model's predicted class, give each feature's frequency
of values (discrete features: each value seen; continuous ones: the owner's deciles)
within each class. A query x of predicted class c scores the negative log-likelihood

    N(x) = - sum_j log p_j(bin_j(x_j) | c)

under that class's table (a naive Bayes model of the owner's rows, with half a row of
prior in every bin). Natural rows of class c resemble the owner's rows of class c: their
features move together as the class's do (a benign breast-cancer sample scores 1 or 2
on every measure). Queries drawn without the data (uniform draws over the input box,
points between rows along a line) take each feature's values independently and land in
bins the class seldom or never fills, so their mean N runs above any honest client's
within a few queries. The test compares the mean N of the client's queries so far with
a calibrated per-n upper bound (:func:`likelihood_band`), as PRADA's scale test does for
the mean distance.

The model is fitted on the owner's rows only and kept with the detector: a few numbers
per feature, value and class (no rows). Scoring a query costs one binary search per
feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stealml.exceptions import ConfigurationError

__all__ = ["RowModel", "fit_row_model", "lattice", "likelihood_curve", "off_grid"]

MAX_VALUES = 64  # a feature with at most this many distinct values is discrete
BINS = 10  # a continuous feature's bins: the owner's deciles
PRIOR = 0.5  # rows of prior in every bin (Jeffreys)
MAX_DIVISOR = 12  # a lattice's step is the smallest gap between values over 1..this
GRID_TOLERANCE = 1e-6  # off the lattice: farther than this many steps from its points
# a lattice is kept only if this many of the owner's rows lie off its most common value:
# were the true step finer, each of them would land on the coarse lattice with chance at
# most 1/2, all of them with at most 2^-20 (Digits' rare pixels show 0 and 16 only)
GRID_SUPPORT = 20


@dataclass(frozen=True)
class RowModel:
    """Per-class, per-feature value frequencies of the owner's rows.

    Parameters
    ----------
    edges : tuple of tuple of float
        Per feature, the sorted bin edges: value v falls in bin ``searchsorted(edges, v,
        side="right")`` (``len(edges) + 1`` bins).
    log_probs : tuple of (str, tuple of tuple of float)
        Per predicted class, per feature, the log-probability of each bin.
    pooled : tuple of tuple of float
        The same over all classes: used for a class the owner's rows never got.
    """

    edges: tuple[tuple[float, ...], ...]
    log_probs: tuple[tuple[str, tuple[tuple[float, ...], ...]], ...]
    pooled: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        sizes = [len(e) + 1 for e in self.edges]
        tables = [self.pooled, *(t for _, t in self.log_probs)]
        if not self.edges or any([len(f) for f in t] != sizes for t in tables):
            raise ConfigurationError("PRADA's row model needs one log-probability per bin "
                                     "of every feature, for every class")
        if any(not np.all(np.diff(e) > 0) for e in self.edges if len(e) > 1) or \
                any(not np.isfinite(e).all() for e in self.edges):
            raise ConfigurationError("PRADA's row model's bin edges must be finite and "
                                     "increasing")
        if any(not (np.isfinite(p).all() and np.all(np.asarray(p) <= 0))
               for t in tables for p in t):
            raise ConfigurationError("PRADA's row model's log-probabilities must be finite "
                                     "and at most 0")
        if len({c for c, _ in self.log_probs}) != len(self.log_probs):
            raise ConfigurationError("PRADA's row model names a class twice")
        object.__setattr__(self, "_arrays", (
            [np.asarray(e, dtype=float) for e in self.edges],
            {c: [np.asarray(p, dtype=float) for p in t] for c, t in self.log_probs},
            [np.asarray(p, dtype=float) for p in self.pooled]))

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def scores(self, X: Any, labels: Any) -> np.ndarray:
        """N(x) of each row of ``X`` (model space; NaN read as 0, as PRADA's distances
        do) with predicted class ``labels``."""
        X = np.nan_to_num(np.asarray(X, dtype=float), nan=0.0)
        labels = np.asarray(labels).astype(str)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ConfigurationError(f"PRADA's row model has {self.n_features} features, "
                                     f"not {X.shape[1:]}")
        edges, tables, pooled = self._arrays  # type: ignore[attr-defined]
        bins = [np.searchsorted(e, X[:, j], side="right") for j, e in enumerate(edges)]
        out = np.zeros(len(X))
        for c in np.unique(labels):
            rows = labels == c
            table = tables.get(c, pooled)
            for j, p in enumerate(table):
                out[rows] -= p[bins[j][rows]]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [list(e) for e in self.edges],
                "log_probs": {c: [list(p) for p in t] for c, t in self.log_probs},
                "pooled": [list(p) for p in self.pooled]}

    @classmethod
    def from_dict(cls, data: Any) -> RowModel:
        if not isinstance(data, dict) or set(data) != {"edges", "log_probs", "pooled"}:
            raise ConfigurationError("PRADA's row model is an object with edges, log_probs "
                                     "and pooled")
        try:
            return cls(tuple(tuple(float(v) for v in e) for e in data["edges"]),
                       tuple((str(c), tuple(tuple(float(v) for v in p) for p in t))
                             for c, t in dict(data["log_probs"]).items()),
                       tuple(tuple(float(v) for v in p) for p in data["pooled"]))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"a bad PRADA row model: {exc!r}") from exc


def row_edges(X: np.ndarray, max_values: int = MAX_VALUES,
              bins: int = BINS) -> tuple[tuple[float, ...], ...]:
    """Each feature's bin edges from the owner's rows ``X``: midway between consecutive
    values for a feature with at most ``max_values`` distinct values (each value its own
    bin; a value the owner never saw falls in its nearer neighbour's), else the owner's
    ``bins``-quantiles (repeated quantiles merged)."""
    out = []
    for column in np.asarray(X, dtype=float).T:
        values = np.unique(column[np.isfinite(column)])
        if len(values) <= max_values:
            out.append(tuple(float(v) for v in (values[1:] + values[:-1]) / 2))
        else:
            q = np.quantile(column[np.isfinite(column)], np.arange(1, bins) / bins)
            out.append(tuple(float(v) for v in np.unique(q)))
    return tuple(out)


def _table(X: np.ndarray, edges: list[np.ndarray], prior: float) -> tuple[tuple[float, ...],
                                                                          ...]:
    table = []
    for j, e in enumerate(edges):
        counts = np.bincount(np.searchsorted(e, X[:, j], side="right"),
                             minlength=len(e) + 1) + prior
        table.append(tuple(float(v) for v in np.log(counts / counts.sum())))
    return tuple(table)


def fit_row_model(X: Any, labels: Any, edges: tuple[tuple[float, ...], ...] | None = None,
                  prior: float = PRIOR) -> RowModel:
    """:class:`RowModel` of the owner's rows ``X`` with the model's predicted ``labels``
    (``edges``: :func:`row_edges` of ``X`` unless given)."""
    X = np.nan_to_num(np.asarray(X, dtype=float), nan=0.0)
    labels = np.asarray(labels).astype(str)
    if X.ndim != 2 or len(X) == 0 or len(labels) != len(X):
        raise ConfigurationError("PRADA's likelihood test needs the owner's rows and their "
                                 "labels")
    if not prior > 0:
        raise ConfigurationError(f"the likelihood test's prior must be above 0, not {prior}")
    edges = row_edges(X) if edges is None else edges
    arrays = [np.asarray(e, dtype=float) for e in edges]
    return RowModel(tuple(edges),
                    tuple((c, _table(X[labels == c], arrays, prior))
                          for c in sorted(set(labels.tolist()))),
                    _table(X, arrays, prior))


def likelihood_curve(scores: np.ndarray, labels: Any, start: int,
                     stop: int | None = None) -> np.ndarray:
    """The likelihood test's statistic along a stream whose queries have
    :meth:`RowModel.scores` ``scores`` and predicted ``labels``: after the client's n-th
    distance, for n = ``start``..``stop`` (index n - start), the mean score of all its
    queries so far (PRADA's first query of each class gives no distance).

    Examples
    --------
    >>> likelihood_curve(np.array([1.0, 3.0, 2.0, 6.0]), ["a", "b", "a", "a"], 1).tolist()
    [2.0, 3.0]
    """
    from stealml.defences.prada import _distance_queries

    at = _distance_queries(labels)
    stop = len(at) if stop is None else min(stop, len(at))
    if stop < start:
        return np.array([])
    at = at[start - 1:stop]
    return np.cumsum(np.asarray(scores, dtype=float))[at] / (at + 1)


def lattice(X: Any, max_values: int = MAX_VALUES,
            support: int = GRID_SUPPORT) -> tuple[tuple[int, float, float], ...]:
    """The features of the owner's rows ``X`` whose values lie on a lattice, as
    ``(feature, origin, step)``: a feature with 2 to ``max_values`` distinct values all
    of which are ``origin`` plus a whole number of ``step`` (the smallest gap between
    them divided by 1..``MAX_DIVISOR``), and at least ``support`` rows off its most
    common value (fewer could sit on a coarser lattice than the population's by chance).
    Integer scores, counts and one-hot or ordinal codes lie on one, in any affine
    scaling; measured values do not (a feature whose values fit no such step has none).

    Examples
    --------
    >>> X = np.column_stack([np.arange(40) % 5 + 1.0, np.sqrt(np.arange(40))])
    >>> lattice(X)
    ((0, 1.0, 1.0),)
    """
    out = []
    for j, column in enumerate(np.asarray(X, dtype=float).T):
        values, counts = np.unique(column[np.isfinite(column)], return_counts=True)
        if not 2 <= len(values) <= max_values or counts.sum() - counts.max() < support:
            continue
        gap = float(np.diff(values).min())
        for m in range(1, MAX_DIVISOR + 1):
            k = (values - values[0]) / (gap / m)
            if np.all(np.abs(k - np.round(k)) <= GRID_TOLERANCE):
                out.append((j, float(values[0]), gap / m))
                break
    return tuple(out)


def off_grid(X: Any, grid: tuple[tuple[int, float, float], ...]) -> np.ndarray:
    """Whether each row of ``X`` has a value off its feature's lattice (``grid``, from
    :func:`lattice`): farther than ``GRID_TOLERANCE`` steps from every point of it. A
    missing value (NaN) is on it."""
    X = np.asarray(X, dtype=float)
    out = np.zeros(len(X), dtype=bool)
    for j, origin, step in grid:
        k = (X[:, j] - origin) / step
        with np.errstate(invalid="ignore"):
            out |= np.abs(k - np.round(k)) > GRID_TOLERANCE
    return out

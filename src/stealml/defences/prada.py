"""PRADA: flag a client whose queries' distances are not normally distributed.

For each client, every new query x (in the model's encoded input space) with predicted
class c is compared with the client's *growing set* G_c of earlier queries of class c: its
minimum L2 distance d joins the client's distance set D, and x joins G_c when d exceeds
the class's threshold T_c (then T_c = max(T_c, mean - std of the distances that grew
G_c)). Natural queries give distances close to a normal distribution; an attack's
synthetic queries (points on a line, a grid, perturbations of a few seeds, uniform noise
in a high-dimensional cube) do not. Once D holds ``min_samples`` distances, the
Shapiro-Wilk statistic W of D (less its outliers beyond 3 standard deviations) is
computed after every query and the client is flagged when W < ``delta``.

References: Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model
Stealing Attacks", IEEE EuroS&P 2019, section IV (Algorithm 1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import shapiro

from stealml.exceptions import ConfigurationError
from stealml.random import RandomState, as_generator

__all__ = ["Prada", "PradaState", "calibrate_delta"]


@dataclass(frozen=True)
class Prada:
    """The PRADA detector's settings; :meth:`new_state` starts one client's record.

    Parameters
    ----------
    delta : float
        Flag when the Shapiro-Wilk W of the client's distances drops below this
        (0 < delta < 1; calibrate it on honest traffic, see ``docs/defences.md``).
    min_samples : int
        Distances collected before the test is run (at least 3).

    Examples
    --------
    >>> state = Prada(delta=0.9, min_samples=20).new_state()
    >>> line = np.linspace(0, 1, 60)[:, None] * np.ones((1, 3))  # a line search
    >>> state.update(line, np.zeros(60)) is not None
    True
    """

    delta: float = 0.9
    min_samples: int = 100
    name = "prada"

    def __post_init__(self) -> None:
        if not (0 < self.delta < 1):
            raise ConfigurationError(f"PRADA's delta must be between 0 and 1, not {self.delta}")
        if isinstance(self.min_samples, bool) or int(self.min_samples) != self.min_samples \
                or self.min_samples < 3:
            raise ConfigurationError(f"PRADA's min_samples must be a whole number >= 3, "
                                     f"not {self.min_samples}")

    def new_state(self) -> PradaState:
        return PradaState(self)


class _Growing:
    """A class's growing set: rows kept in a doubling array."""

    def __init__(self, d: int) -> None:
        self.rows = np.empty((16, d))
        self.n = 0
        self.threshold = 0.0
        self._count = 0  # distances that grew the set: count, sum, sum of squares
        self._sum = 0.0
        self._squares = 0.0

    def grew(self, d: float) -> None:
        """Record a distance that grew the set; T_c = max(T_c, mean - std of them)."""
        self._count += 1
        self._sum += d
        self._squares += d * d
        mean = self._sum / self._count
        std = math.sqrt(max(self._squares / self._count - mean * mean, 0.0))
        self.threshold = max(self.threshold, mean - std)

    def add(self, x: np.ndarray) -> None:
        if self.n == len(self.rows):
            self.rows = np.vstack([self.rows, np.empty_like(self.rows)])
        self.rows[self.n] = x
        self.n += 1


class PradaState:
    """One client's PRADA record.

    Attributes
    ----------
    queries : int
        Queries observed.
    distances : list of float
        The minimum distances D collected so far.
    statistic : float or None
        The latest Shapiro-Wilk W (None before ``min_samples`` distances).
    min_statistic : float or None
        The smallest W seen.
    flagged_at : int or None
        The query (1-based) after which the client was flagged.
    """

    def __init__(self, detector: Prada) -> None:
        self.detector = detector
        self.queries = 0
        self.distances: list[float] = []
        self.statistic: float | None = None
        self.min_statistic: float | None = None
        self.flagged_at: int | None = None
        self._groups: dict[str, _Growing] = {}

    def update(self, X: np.ndarray, labels: Any) -> int | None:
        """Observe queries in order; returns the index of the row that raised the flag
        (rows after it are not observed), or None."""
        X = np.nan_to_num(np.asarray(X, dtype=float), nan=0.0)
        for i, (x, label) in enumerate(zip(X, np.asarray(labels), strict=True)):
            if self.flagged_at is not None:
                return None
            self.queries += 1
            if self._observe(x, str(label)):
                self.flagged_at = self.queries
                return i
        return None

    def _observe(self, x: np.ndarray, label: str) -> bool:
        group = self._groups.get(label)
        if group is None:
            group = self._groups[label] = _Growing(len(x))
            group.add(x)
            group.grew(0.0)  # Algorithm 1: D_Gc starts with 0
            return False
        diff = group.rows[:group.n] - x
        d = float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))
        self.distances.append(d)
        if d > group.threshold:
            group.add(x)
            group.grew(d)
        if len(self.distances) < self.detector.min_samples:
            return False
        w = _shapiro_w(self.distances)
        self.statistic = w
        self.min_statistic = w if self.min_statistic is None else min(self.min_statistic, w)
        return w < self.detector.delta

    def summary(self) -> dict[str, Any]:
        return {"detector": "prada", "queries": self.queries, "flagged_at": self.flagged_at,
                "statistic": self.statistic, "min_statistic": self.min_statistic}


def _shapiro_w(values: list[float]) -> float:
    """W of the distances within 3 standard deviations of their mean (Algorithm 1's D')."""
    x = np.asarray(values)
    mean, std = x.mean(), x.std()
    x = x[(x >= mean - 3 * std) & (x <= mean + 3 * std)]
    if len(x) < 3 or np.ptp(x) == 0:
        return 0.0  # every distance equal (e.g. a grid): as far from normal as it gets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns above 5,000 samples (p, not W)
        w = float(shapiro(x).statistic)
    return w if math.isfinite(w) else 0.0


def calibrate_delta(X: np.ndarray, labels: Any, min_samples: int = 100, orders: int = 5,
                    margin: float = 0.02, max_rows: int = 2000,
                    random_state: RandomState = 0) -> float:
    """A PRADA threshold from honest traffic: the smallest W that the rows ``X`` (with
    the model's ``labels``), sent in ``orders`` random orders, ever reach, less ``margin``.

    The owner runs it on natural data it holds (e.g. part of its training data); honest
    clients whose queries come from the same distribution then stay above the threshold
    with high probability, and the threshold says how far from normal an attacker's
    distances must be to be seen.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> 0.8 < calibrate_delta(X, np.zeros(300)) < 1
    True
    """
    X = np.asarray(X, dtype=float)
    labels = np.asarray(labels)
    if len(X) <= min_samples + 1:
        raise ConfigurationError(f"calibrating PRADA needs more than {min_samples + 1} "
                                 f"honest rows, not {len(X)}")
    rng = as_generator(random_state)
    lowest = 1.0
    for _ in range(orders):
        order = rng.permutation(len(X))[:max_rows]
        state = Prada(delta=1e-9, min_samples=min_samples).new_state()
        state.update(X[order], labels[order])
        if state.min_statistic is not None:
            lowest = min(lowest, state.min_statistic)
    return max(lowest - margin, 1e-6)

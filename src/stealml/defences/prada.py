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

Beyond the paper, the threshold may depend on the number n of distances: W of a few
distances varies much more than W of hundreds, so one ``delta`` low enough for honest
clients' first 10 distances is blind later, and one right for 100 distances needs
``min_samples`` = 100, which short attacks never reach. :func:`calibrate_prada` measures
honest W_n over many orders of the owner's natural rows and sets ``thresholds`` to a
simultaneous lower band (:func:`w_band`: the per-n median less a multiple of the per-n
lower-tail spread, wide enough for every calibration order at every n, then widened for
rows the owner does not hold), so the test can start after a few distances without
flagging honest traffic. Also beyond the paper, W of the client's last k distances
(``windows``) is tested the same way, each k with its own calibrated per-n band: an
attack whose distances are abnormal for a few dozen queries (a line search's halving
steps, a run of equal steps) hides in the whole history's W but not in a window's.
Last, the share of distinct values among the client's last k distances (``repeats``) is
tested against its own calibrated per-n band: distances of natural rows repeat only as
often as the owner's rows make them repeat, while queries that change one category or
step a grid at a time from a few starting points give the same distance again and again
(a normal sample has no ties; W alone, computed on the values, can stay high on such a
lattice). The share of distinct values among *all* the client's distances is tested on
both sides (``distinct_low``, ``distinct_high``): too many repeats, as above, or too few
where the owner's natural rows are discrete (integer scores, categories) and repeat
distances at a steady rate that queries off the lattice (line searches, random draws
between rows) do not. Last, the client's mix of predicted classes is compared with the
owner's (``label_shares``, ``label_high``): the total variation distance between the
shares of the client's queries in each class and the shares of the owner's rows, against
its own calibrated per-n upper bound. Queries drawn without the data's distribution
(uniform draws, points along a boundary, a line search from one seed) land in one class
far more often than natural rows do; an honest client's mix drifts from the owner's only
by sampling (and by how the model's classes on new rows differ from those on its
training rows, which the bound allows as a fixed ``LABEL_DRIFT``). Last, the mean of
the client's distances is compared with honest clients' (``scale_high``, a calibrated
per-n upper bound): W and the share tests read the distances' shape and not their size,
and a client drawing queries uniformly from the whole input space spreads them far wider
than any natural client does (random points in a cube lie far from each other, while
natural rows cluster), though their distances, as a sample, look as normal as natural
rows' or more.
Last, the mean distance between *every pair* of the client's queries, of any class
(``spread_high``, a calibrated per-n upper bound): the same premise as the scale test, read
from all pairs instead of each query's nearest earlier neighbour of its class, which makes
it steadier on few queries (a client's first twenty queries give 190 pairs but twenty
distances) and blind to how the model splits the queries into classes.
Last, the mean negative log-likelihood of the client's queries under a per-class model of
the owner's rows (``row_model``, ``likelihood_high``: :mod:`stealml.defences.likelihood`):
natural rows move their features together as the owner's rows of their class do, while
queries drawn feature by feature without the data (uniform draws, points on lines between
them) fall where the owner's rows seldom go, even on a lattice and inside the data's box,
where the distance tests see nothing amiss. Last, where the owner's rows lie on a
lattice (integer scores, counts, codes: ``grid``), a client that sends ``grid_flag``
queries off it (a line search's midpoints, random reals) is flagged: no natural row
falls there.

References: Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model
Stealing Attacks", IEEE EuroS&P 2019, section IV (Algorithm 1).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from stealml.defences.likelihood import (
    RowModel,
    fit_row_model,
    lattice,
    likelihood_curve,
    off_grid,
    row_edges,
)
from stealml.exceptions import ConfigurationError
from stealml.random import RandomState, as_generator

__all__ = ["Prada", "PradaState", "calibrate_delta", "calibrate_prada", "distinct_curve",
           "distinct_share",
           "first_flag", "grid_flag_distances", "honest_band", "honest_bands",
           "honest_streams", "honest_w_curves", "label_band", "label_curve", "label_shares",
           "likelihood_curve",
           "prada_from_bands", "prada_from_file", "repeat_curve", "scale_curve",
           "shapiro_w", "spread_curve", "w_band", "window_curve"]


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
    thresholds : tuple of float
        Per-n thresholds: with n distances the client is flagged when W <
        ``thresholds[n - min_samples]``; beyond the tuple's end, ``delta`` applies
        (see :func:`calibrate_prada`). Empty (the paper's test): ``delta`` throughout.
    windows : tuple of int
        Sizes k of the recent-window tests: once the client has n >= k distances, W of
        its last k distances is also computed after every query (not in the paper).
    window_thresholds : tuple of tuple of float
        One per window: the client is flagged when the window's W <
        ``window_thresholds[i][n - k]``; beyond the tuple's end (the volume the owner
        calibrated) the window is not tested.
    repeats : tuple of int
        Sizes k of the repeat tests: once the client has n >= k distances, the share of
        distinct values among its last k distances (:func:`distinct_share`) is computed
        after every query (not in the paper).
    repeat_thresholds : tuple of tuple of float
        One per repeat test: flagged when the share < ``repeat_thresholds[i][n - k]``;
        not tested beyond the tuple's end.
    distinct_low, distinct_high : tuple of float
        Per-n bounds on the share of distinct values among all n distances (from
        ``min_samples`` on): flagged when it is below ``distinct_low[n - min_samples]``
        (too many repeats) or above ``distinct_high[n - min_samples]`` (too few); not
        tested beyond each tuple's end (not in the paper).
    label_shares : tuple of (str, float)
        The owner's share of rows in each predicted class (summing to 1), for the label
        test (not in the paper).
    label_high : tuple of float
        Per-n upper bounds on the total variation distance between the client's class
        shares (all its queries so far) and ``label_shares``, once the client has n
        distances (from ``min_samples`` on): flagged when it is above
        ``label_high[n - min_samples]``; not tested beyond the tuple's end.
    scale_high : tuple of float
        Per-n upper bounds on the mean of the client's n distances (from ``min_samples``
        on): flagged when it is above ``scale_high[n - min_samples]``; not tested beyond
        the tuple's end (not in the paper).
    spread_high : tuple of float
        Per-n upper bounds on the mean distance between every pair of the client's
        queries so far (of any class), once it has n distances (from ``min_samples`` on):
        flagged when it is above ``spread_high[n - min_samples]``; not tested beyond the
        tuple's end (not in the paper).
    row_model : RowModel or None
        The owner's rows' per-class value frequencies, for the likelihood test
        (:mod:`stealml.defences.likelihood`; not in the paper).
    likelihood_high : tuple of float
        Per-n upper bounds on the mean negative log-likelihood of the client's queries so
        far under ``row_model``, once it has n distances (from ``min_samples`` on): flagged
        when it is above ``likelihood_high[n - min_samples]``; not tested beyond the
        tuple's end.
    grid : tuple of (int, float, float)
        The features whose values in the owner's rows lie on a lattice, as (feature,
        origin, step) (:func:`~stealml.defences.likelihood.lattice`; not in the paper).
    grid_flag : int
        Flag a client once this many of its queries have a value off ``grid`` (from the
        first query on; no natural row does).
    by_class : bool
        Group each client's queries by predicted class (the paper's G_c). False for a
        model without classes (a regressor): its answers are values, one group per
        distinct value would leave nearly every query alone in its group and PRADA with
        no distances, so all queries form one group (not in the paper, which defends
        classifiers); the label test then does not apply.

    Examples
    --------
    >>> state = Prada(delta=0.9, min_samples=20).new_state()
    >>> line = np.linspace(0, 1, 60)[:, None] * np.ones((1, 3))  # a line search
    >>> state.update(line, np.zeros(60)) is not None
    True
    """

    delta: float = 0.9
    min_samples: int = 100
    thresholds: tuple[float, ...] = ()
    windows: tuple[int, ...] = ()
    window_thresholds: tuple[tuple[float, ...], ...] = ()
    repeats: tuple[int, ...] = ()
    repeat_thresholds: tuple[tuple[float, ...], ...] = ()
    distinct_low: tuple[float, ...] = ()
    distinct_high: tuple[float, ...] = ()
    label_shares: tuple[tuple[str, float], ...] = ()
    label_high: tuple[float, ...] = ()
    scale_high: tuple[float, ...] = ()
    spread_high: tuple[float, ...] = ()
    row_model: RowModel | None = None
    likelihood_high: tuple[float, ...] = ()
    grid: tuple[tuple[int, float, float], ...] = ()
    grid_flag: int = 3
    by_class: bool = True
    name = "prada"

    def __post_init__(self) -> None:
        if not (0 < self.delta < 1):
            raise ConfigurationError(f"PRADA's delta must be between 0 and 1, not {self.delta}")
        if isinstance(self.min_samples, bool) or int(self.min_samples) != self.min_samples \
                or self.min_samples < 3:
            raise ConfigurationError(f"PRADA's min_samples must be a whole number >= 3, "
                                     f"not {self.min_samples}")
        if any(not (0 < t < 1) for t in self.thresholds):
            raise ConfigurationError("PRADA's thresholds must all be between 0 and 1")
        _check_sized("windows", self.windows, "window", self.window_thresholds)
        if any(not (0 < t < 1) for ts in self.window_thresholds for t in ts):
            raise ConfigurationError("PRADA's window thresholds must all be between 0 and 1")
        _check_sized("repeats", self.repeats, "repeat", self.repeat_thresholds)
        if any(not (0 < t <= 1) for ts in self.repeat_thresholds for t in ts):
            raise ConfigurationError("PRADA's repeat thresholds must all be in (0, 1]")
        if any(not (0 < t <= 1) for t in self.distinct_low):
            raise ConfigurationError("PRADA's distinct_low bounds must all be in (0, 1]")
        if any(not (t > 0) for t in self.distinct_high):
            raise ConfigurationError("PRADA's distinct_high bounds must all be above 0")
        if any(not (0 <= p <= 1) for _, p in self.label_shares) or (
                self.label_shares and abs(sum(p for _, p in self.label_shares) - 1) > 1e-6):
            raise ConfigurationError("PRADA's label shares must be between 0 and 1 and sum "
                                     "to 1")
        if len({c for c, _ in self.label_shares}) != len(self.label_shares):
            raise ConfigurationError("PRADA's label shares name a class twice")
        if any(not (t > 0) for t in self.label_high):
            raise ConfigurationError("PRADA's label_high bounds must all be above 0")
        if self.label_high and not self.label_shares:
            raise ConfigurationError("PRADA's label test needs the owner's label_shares")
        if not isinstance(self.by_class, bool):
            raise ConfigurationError(f"PRADA's by_class is true or false, not "
                                     f"{self.by_class!r}")
        if not self.by_class and (self.label_shares or self.label_high):
            raise ConfigurationError("PRADA's label test needs classes, and by_class is "
                                     "false (a model without classes)")
        if any(not (t > 0 and math.isfinite(t)) for t in self.scale_high):
            raise ConfigurationError("PRADA's scale_high bounds must all be finite and "
                                     "above 0")
        if any(not (t > 0 and math.isfinite(t)) for t in self.spread_high):
            raise ConfigurationError("PRADA's spread_high bounds must all be finite and "
                                     "above 0")
        if any(not (t > 0 and math.isfinite(t)) for t in self.likelihood_high):
            raise ConfigurationError("PRADA's likelihood_high bounds must all be finite and "
                                     "above 0")
        if self.likelihood_high and self.row_model is None:
            raise ConfigurationError("PRADA's likelihood test needs the owner's row_model")
        if any(len(g) != 3 or isinstance(g[0], bool) or int(g[0]) != g[0] or g[0] < 0
               or not math.isfinite(g[1]) or not (g[2] > 0 and math.isfinite(g[2]))
               for g in self.grid) or len({g[0] for g in self.grid}) != len(self.grid):
            raise ConfigurationError("PRADA's grid is (feature, origin, step) triples, one "
                                     "per feature, with a finite origin and a step above 0")
        if isinstance(self.grid_flag, bool) or int(self.grid_flag) != self.grid_flag \
                or self.grid_flag < 1:
            raise ConfigurationError(f"PRADA's grid_flag must be a whole number >= 1, not "
                                     f"{self.grid_flag}")

    def threshold(self, n: int) -> float:
        """The threshold W is compared with once the client has ``n`` distances."""
        i = n - self.min_samples
        return self.thresholds[i] if 0 <= i < len(self.thresholds) else self.delta

    def window_threshold(self, i: int, n: int) -> float:
        """The threshold the W of window ``i``'s last ``windows[i]`` distances is compared
        with once the client has ``n`` distances; 0 (no test) beyond the calibrated n:
        near-duplicate rows, which pull a window's W down, grow more frequent as a stream
        grows, and the owner's rows say nothing about windows of streams longer than its
        calibration orders."""
        ts, j = self.window_thresholds[i], n - self.windows[i]
        return ts[j] if 0 <= j < len(ts) else 0.0

    def repeat_threshold(self, i: int, n: int) -> float:
        """The threshold the share of distinct values among the last ``repeats[i]``
        distances is compared with once the client has ``n`` distances; 0 (no test)
        beyond the calibrated n, as :meth:`window_threshold`."""
        ts, j = self.repeat_thresholds[i], n - self.repeats[i]
        return ts[j] if 0 <= j < len(ts) else 0.0

    def distinct_bounds(self, n: int) -> tuple[float, float]:
        """The bounds (low, high) the share of distinct values among all ``n`` distances
        must stay within; (0, inf) (no test) beyond the calibrated n."""
        j = n - self.min_samples
        low = self.distinct_low[j] if 0 <= j < len(self.distinct_low) else 0.0
        high = self.distinct_high[j] if 0 <= j < len(self.distinct_high) else math.inf
        return low, high

    def label_bound(self, n: int) -> float:
        """The bound the client's class shares' distance from ``label_shares`` must stay
        below once it has ``n`` distances; inf (no test) beyond the calibrated n."""
        j = n - self.min_samples
        return self.label_high[j] if 0 <= j < len(self.label_high) else math.inf

    def scale_bound(self, n: int) -> float:
        """The bound the mean of the client's ``n`` distances must stay below; inf (no
        test) beyond the calibrated n."""
        j = n - self.min_samples
        return self.scale_high[j] if 0 <= j < len(self.scale_high) else math.inf

    def spread_bound(self, n: int) -> float:
        """The bound the mean distance between every pair of the client's queries must
        stay below once it has ``n`` distances; inf (no test) beyond the calibrated n."""
        j = n - self.min_samples
        return self.spread_high[j] if 0 <= j < len(self.spread_high) else math.inf

    def likelihood_bound(self, n: int) -> float:
        """The bound the mean negative log-likelihood of the client's queries must stay
        below once it has ``n`` distances; inf (no test) beyond the calibrated n."""
        j = n - self.min_samples
        return self.likelihood_high[j] if 0 <= j < len(self.likelihood_high) else math.inf

    def new_state(self) -> PradaState:
        return PradaState(self)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able data (:meth:`from_dict` reads them back)."""
        data: dict[str, Any] = {"detector": "prada", "delta": self.delta,
                                "min_samples": self.min_samples,
                                "thresholds": list(self.thresholds)}
        if self.windows:
            data["windows"] = list(self.windows)
            data["window_thresholds"] = [list(t) for t in self.window_thresholds]
        if self.repeats:
            data["repeats"] = list(self.repeats)
            data["repeat_thresholds"] = [list(t) for t in self.repeat_thresholds]
        if self.distinct_low:
            data["distinct_low"] = list(self.distinct_low)
        if self.distinct_high:
            data["distinct_high"] = list(self.distinct_high)
        if self.label_shares:
            data["label_shares"] = dict(self.label_shares)
        if self.label_high:
            data["label_high"] = list(self.label_high)
        if self.scale_high:
            data["scale_high"] = list(self.scale_high)
        if self.spread_high:
            data["spread_high"] = list(self.spread_high)
        if self.likelihood_high and self.row_model is not None:
            data["likelihood_high"] = list(self.likelihood_high)
            data["row_model"] = self.row_model.to_dict()
        if self.grid:
            data["grid"] = [list(g) for g in self.grid]
            data["grid_flag"] = self.grid_flag
        if not self.by_class:
            data["by_class"] = False
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Prada:
        """A detector from :meth:`to_dict`'s data; a clear error on anything else."""
        if not isinstance(data, dict) or data.get("detector") != "prada":
            raise ConfigurationError("a PRADA calibration is a JSON object with "
                                     "\"detector\": \"prada\" (see stealml calibrate-prada)")
        unknown = set(data) - {"detector", "delta", "min_samples", "thresholds", "windows",
                               "window_thresholds", "repeats", "repeat_thresholds",
                               "distinct_low", "distinct_high", "label_shares",
                               "label_high", "scale_high", "spread_high",
                               "likelihood_high", "row_model", "grid", "grid_flag",
                               "by_class", "calibration"}
        if unknown:
            raise ConfigurationError(f"a PRADA calibration has no field {sorted(unknown)[0]!r}")
        try:
            thresholds = tuple(float(t) for t in data.get("thresholds", ()))
            windows = tuple(data.get("windows", ()))
            window_thresholds = tuple(tuple(float(t) for t in ts)
                                      for ts in data.get("window_thresholds", ()))
            repeat_thresholds = tuple(tuple(float(t) for t in ts)
                                      for ts in data.get("repeat_thresholds", ()))
            return cls(delta=float(data["delta"]), min_samples=data.get("min_samples", 100),
                       thresholds=thresholds, windows=windows,
                       window_thresholds=window_thresholds,
                       repeats=tuple(data.get("repeats", ())),
                       repeat_thresholds=repeat_thresholds,
                       distinct_low=tuple(float(t) for t in data.get("distinct_low", ())),
                       distinct_high=tuple(float(t) for t in data.get("distinct_high", ())),
                       label_shares=tuple((str(c), float(p))
                                          for c, p in dict(data.get("label_shares", {})).items()),
                       label_high=tuple(float(t) for t in data.get("label_high", ())),
                       scale_high=tuple(float(t) for t in data.get("scale_high", ())),
                       spread_high=tuple(float(t) for t in data.get("spread_high", ())),
                       row_model=RowModel.from_dict(data["row_model"])
                       if "row_model" in data else None,
                       likelihood_high=tuple(float(t)
                                             for t in data.get("likelihood_high", ())),
                       grid=tuple((int(j), float(a), float(h))
                                  for j, a, h in data.get("grid", ())),
                       grid_flag=data.get("grid_flag", 3),
                       by_class=data.get("by_class", True))
        except ConfigurationError as exc:  # a setting out of range: its own message
            raise ConfigurationError(f"a bad PRADA calibration: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"a bad PRADA calibration: {exc!r}") from exc

    def save(self, path: str | Path, **calibration: Any) -> None:
        """Write the settings as JSON (with ``calibration``: how they were obtained)."""
        data = self.to_dict()
        if calibration:
            data["calibration"] = calibration
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Prada:
        """Read a detector written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the PRADA calibration {path}: {exc}") \
                from exc
        return cls.from_dict(data)


def _check_sized(field: str, sizes: tuple[int, ...], test: str,
                 thresholds: tuple[tuple[float, ...], ...]) -> None:
    """The sizes k of a family of last-k tests are whole numbers >= 3, each with a
    non-empty tuple of thresholds."""
    if any(isinstance(k, bool) or int(k) != k or k < 3 for k in sizes):
        raise ConfigurationError(f"PRADA's {field} must be whole numbers >= 3, not "
                                 f"{list(sizes)}")
    if len(thresholds) != len(sizes) or any(not t for t in thresholds):
        raise ConfigurationError(f"PRADA needs one non-empty tuple of {test}_thresholds "
                                 f"per {test} test")


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
        The smallest W seen (of the whole history).
    flagged_at : int or None
        The query (1-based) after which the client was flagged.
    flagged_by : str or None
        The test that flagged it: ``"W"`` (all distances), ``"W<k>"`` (W of the last k)
        ``"R<k>"`` (repeats among the last k), ``"R"`` (too many repeats among all
        distances), ``"U"`` (too few), ``"L"`` (a mix of classes unlike the owner's),
        ``"S"`` (distances larger on average than honest clients'), ``"P"`` (queries
        farther apart, pair by pair, than honest clients'), ``"N"`` (queries less likely
        under the owner's rows than honest clients') or ``"G"`` (queries off the owner's
        lattice).
    """

    def __init__(self, detector: Prada) -> None:
        self.detector = detector
        self.queries = 0
        self.distances: list[float] = []
        self.statistic: float | None = None
        self.min_statistic: float | None = None
        self.flagged_at: int | None = None
        self.flagged_by: str | None = None
        self._groups: dict[str, _Growing] = {}
        self._sorted: list[float] = []  # the distances, sorted
        self._distinct = 0  # distances not equal to an earlier one
        self._total = 0.0  # their sum
        self._classes: dict[str, int] = {}  # queries per predicted class
        self._shares = dict(detector.label_shares)
        # the spread test's queries (kept only while it may still be tested) and the sum
        # of the distances between every pair of them
        self._spread_last = detector.min_samples + len(detector.spread_high) - 1
        self._spread: _Growing | None = None
        self._pair_total = 0.0
        # the likelihood test's summed scores (kept while it may still be tested)
        self._likelihood_last = detector.min_samples + len(detector.likelihood_high) - 1
        self._score_total = 0.0
        self._off_grid = 0  # queries with a value off the owner's lattice

    def update(self, X: np.ndarray, labels: Any) -> int | None:
        """Observe queries in order; returns the index of the row that raised the flag
        (rows after it are not observed), or None."""
        X = np.asarray(X, dtype=float)
        off = off_grid(X, self.detector.grid) if self.detector.grid else None
        X = np.nan_to_num(X, nan=0.0)
        labels = np.asarray(labels) if self.detector.by_class else np.zeros(len(X), int)
        for i, (x, label) in enumerate(zip(X, labels, strict=True)):
            if self.flagged_at is not None:
                return None
            self.queries += 1
            flagged = self._observe(x, str(label))
            if not flagged and off is not None and off[i]:
                self._off_grid += 1
                if self._off_grid >= self.detector.grid_flag:
                    self.flagged_by = "G"
                    flagged = True
            if flagged:
                self.flagged_at = self.queries
                return i
        return None

    def _observe(self, x: np.ndarray, label: str) -> bool:
        self._classes[label] = self._classes.get(label, 0) + 1
        rows = self.detector.row_model
        if rows is not None and len(self.distances) < self._likelihood_last:
            self._score_total += float(rows.scores(x[None], [label])[0])
        if self.detector.spread_high and len(self.distances) < self._spread_last:
            # this query may be tested: its distances to every earlier query
            if self._spread is None:
                self._spread = _Growing(len(x))
            else:
                diff = self._spread.rows[:self._spread.n] - x
                self._pair_total += float(np.sqrt(np.einsum("ij,ij->i", diff, diff)).sum())
            self._spread.add(x)
        elif self._spread is not None:
            self._spread = None  # past the tested range: the rows are not needed
        group = self._groups.get(label)
        if group is None:
            group = self._groups[label] = _Growing(len(x))
            group.add(x)
            group.grew(0.0)  # Algorithm 1: D_Gc starts with 0
            return False
        diff = group.rows[:group.n] - x
        d = float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))
        self.distances.append(d)
        self._total += d
        self._distinct += not _is_repeat(self._sorted, d)
        bisect.insort(self._sorted, d)
        if d > group.threshold:
            group.add(x)
            group.grew(d)
        n = len(self.distances)
        if n >= self.detector.min_samples:
            w = _shapiro_w(self.distances)
            self.statistic = w
            self.min_statistic = w if self.min_statistic is None else min(self.min_statistic,
                                                                          w)
            if w < self.detector.threshold(n):
                self.flagged_by = "W"
                return True
        for i, k in enumerate(self.detector.windows):
            limit = self.detector.window_threshold(i, n) if n >= k else 0.0
            if limit > 0 and _shapiro_w(self.distances[-k:]) < limit:
                self.flagged_by = f"W{k}"
                return True
        for i, k in enumerate(self.detector.repeats):
            limit = self.detector.repeat_threshold(i, n) if n >= k else 0.0
            if limit > 0 and distinct_share(self.distances[-k:]) < limit:
                self.flagged_by = f"R{k}"
                return True
        if n >= self.detector.min_samples:
            low, high = self.detector.distinct_bounds(n)
            share = self._distinct / n
            if share < low or share > high:
                self.flagged_by = "R" if share < low else "U"
                return True
            if self.detector.label_high and _label_distance(
                    self._classes, self.queries, self._shares) > self.detector.label_bound(n):
                self.flagged_by = "L"
                return True
            if self._total / n > self.detector.scale_bound(n):
                self.flagged_by = "S"
                return True
            if self._spread is not None and n <= self._spread_last:
                q = self._spread.n
                if self._pair_total / (q * (q - 1) / 2) > self.detector.spread_bound(n):
                    self.flagged_by = "P"
                    return True
            if n <= self._likelihood_last and \
                    self._score_total / self.queries > self.detector.likelihood_bound(n):
                self.flagged_by = "N"
                return True
        return False

    def summary(self) -> dict[str, Any]:
        return {"detector": "prada", "queries": self.queries, "flagged_at": self.flagged_at,
                "flagged_by": self.flagged_by, "statistic": self.statistic,
                "min_statistic": self.min_statistic}


# distances within this relative spread of each other are equal: a line search's steps
# differ by float rounding only (1e-16), which W would otherwise read as a sample
EQUAL = 1e-9


def _is_repeat(ordered: list[float], d: float) -> bool:
    """Whether ``d`` is within a relative ``EQUAL`` of a value of the sorted list."""
    tol = EQUAL * abs(d)
    i = bisect.bisect_left(ordered, d - tol)
    return i < len(ordered) and ordered[i] <= d + tol


@lru_cache(maxsize=1024)
def _sw_coefficients(n: int) -> np.ndarray:
    """Shapiro-Wilk coefficients a_1..a_n (Royston 1992, as scipy's ``swilk``), n >= 3."""
    if n == 3:
        return np.array([-math.sqrt(0.5), 0.0, math.sqrt(0.5)])
    m = ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    mm = float(m @ m)
    c = m / math.sqrt(mm)
    u = 1 / math.sqrt(n)
    a = np.empty(n)
    an = c[-1] + u * (0.221157 + u * (-0.147981 + u * (-2.071190 + u * (4.434685
                                                                       - 2.706056 * u))))
    if n > 5:
        an1 = c[-2] + u * (0.042981 + u * (-0.293762 + u * (-1.752461 + u * (
            5.682633 - 3.582633 * u))))
        phi = (mm - 2 * m[-1] ** 2 - 2 * m[-2] ** 2) / (1 - 2 * an ** 2 - 2 * an1 ** 2)
        a[:] = m / math.sqrt(phi)
        a[0], a[1], a[-2], a[-1] = -an, -an1, an1, an
    else:
        phi = (mm - 2 * m[-1] ** 2) / (1 - 2 * an ** 2)
        a[:] = m / math.sqrt(phi)
        a[0], a[-1] = -an, an
    a.flags.writeable = False
    return a


def shapiro_w(values: Any) -> float:
    """The Shapiro-Wilk statistic W of ``values`` (at least 3, not all equal), as
    ``scipy.stats.shapiro`` computes it (within 1e-9) but without its per-call overhead
    and its warning above 5,000 values: PRADA computes it after every query."""
    x = np.sort(np.asarray(values, dtype=float))
    d = x - x.mean()
    return float((_sw_coefficients(len(x)) @ x) ** 2 / (d @ d))


def _shapiro_w(values: list[float] | np.ndarray) -> float:
    """W of the distances within 3 standard deviations of their mean (Algorithm 1's D')."""
    x = np.asarray(values)
    mean, std = x.mean(), x.std()
    x = x[(x >= mean - 3 * std) & (x <= mean + 3 * std)]
    if len(x) < 3 or np.ptp(x) <= EQUAL * np.abs(x).max():
        return 0.0  # every distance equal (e.g. a grid): as far from normal as it gets
    w = shapiro_w(x)
    return min(w, 1.0) if math.isfinite(w) else 0.0


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


def distances(X: np.ndarray, labels: Any) -> np.ndarray:
    """PRADA's distance stream D of queries ``X`` sent in this order with ``labels``."""
    state = Prada(delta=0.5, min_samples=2**62).new_state()  # collects, never tests
    state.update(X, labels)
    return np.asarray(state.distances)


@lru_cache(maxsize=4)
def _coefficient_rows(width: int) -> np.ndarray:
    """Row c holds the Shapiro-Wilk coefficients for c values, zero-padded to ``width``."""
    A = np.zeros((width + 1, width))
    for c in range(3, width + 1):
        A[c, :c] = _sw_coefficients(c)
    A.flags.writeable = False
    return A


def _w_rows(M: np.ndarray, counts: np.ndarray, mean: np.ndarray, std: np.ndarray,
            A: np.ndarray) -> np.ndarray:
    """:func:`_shapiro_w` of each row of ``M``'s first ``counts`` values, given their
    ``mean`` and ``std`` (``A``: :func:`_coefficient_rows` at least ``M``'s width)."""
    width = M.shape[1]
    keep = (np.arange(width)[None, :] < counts[:, None]) & \
        (np.abs(M - mean[:, None]) <= 3 * std[:, None])
    c = keep.sum(axis=1)
    S = np.sort(np.where(keep, M, np.inf), axis=1)
    valid = np.arange(width)[None, :] < c[:, None]
    S0 = np.where(valid, S, 0.0)
    kept_mean = S0.sum(axis=1) / np.maximum(c, 1)
    ss = (np.where(valid, S0 - kept_mean[:, None], 0.0) ** 2).sum(axis=1)
    num = (A[c, :width] * S0).sum(axis=1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where((c >= 3) & (ss > 0), num / ss, 0.0)
    # all kept distances equal (but for rounding): as far from normal as it gets
    top = S0[np.arange(len(c)), np.maximum(c - 1, 0)]
    w = np.where(top - S0[:, 0] <= EQUAL * np.abs(top), 0.0, w)
    return np.clip(np.nan_to_num(w, nan=0.0), 0.0, 1.0)


def w_curve(D: np.ndarray, min_samples: int, stop: int | None = None,
            chunk: int = 128) -> np.ndarray:
    """W after each distance of ``D`` from the ``min_samples``-th on (W_n at index
    n - min_samples), up to ``stop`` distances: what :class:`PradaState` computes after
    every query, for a whole stream at once (``chunk`` prefixes at a time)."""
    D = np.asarray(D, dtype=float)
    stop = len(D) if stop is None else min(stop, len(D))
    if stop < min_samples:
        return np.array([])
    s1, s2 = np.cumsum(D), np.cumsum(D * D)
    A = _coefficient_rows(max(stop, 3))
    out = []
    for first in range(min_samples, stop + 1, chunk):
        ns = np.arange(first, min(first + chunk, stop + 1))
        mean = s1[ns - 1] / ns
        std = np.sqrt(np.maximum(s2[ns - 1] / ns - mean * mean, 0.0))
        M = np.broadcast_to(D[:int(ns[-1])], (len(ns), int(ns[-1])))
        out.append(_w_rows(M, ns, mean, std, A))
    return np.concatenate(out)


def window_curve(D: np.ndarray, k: int, stop: int | None = None,
                 chunk: int = 4096) -> np.ndarray:
    """W of the last ``k`` distances after each distance of ``D`` from the ``k``-th on
    (index n - k), up to ``stop`` distances: :class:`PradaState`'s window test for a
    whole stream at once.

    Examples
    --------
    >>> D = np.r_[np.random.default_rng(0).normal(1, 0.1, 20), np.full(10, 0.5)]
    >>> w = window_curve(D, 10)
    >>> bool(w[0] > 0.7), float(w[-1])  # normal, then ten equal steps
    (True, 0.0)
    """
    from numpy.lib.stride_tricks import sliding_window_view

    D = np.asarray(D, dtype=float)
    stop = len(D) if stop is None else min(stop, len(D))
    if stop < k:
        return np.array([])
    windows = sliding_window_view(D[:stop], k)
    A = _coefficient_rows(k)
    out = []
    for first in range(0, len(windows), chunk):
        M = windows[first:first + chunk]
        out.append(_w_rows(M, np.full(len(M), k), M.mean(axis=1), M.std(axis=1), A))
    return np.concatenate(out)


def _distinct_counts(S: np.ndarray) -> np.ndarray:
    """The number of distinct values in each row of ``S`` (rows sorted ascending), values
    within a relative ``EQUAL`` of their neighbour counting as one."""
    return 1 + (np.diff(S, axis=1) > EQUAL * np.abs(S[:, 1:])).sum(axis=1)


def distinct_share(values: Any) -> float:
    """The share of distinct values among ``values`` (1: no two equal; 1/len: all
    equal), values within a relative 1e-9 of each other counting as equal (a line
    search's equal steps differ by float rounding only).

    Examples
    --------
    >>> distinct_share([1.0, 2.0, 2.0, 3.0])
    0.75
    """
    x = np.sort(np.asarray(values, dtype=float))[None, :]
    return float(_distinct_counts(x)[0] / x.shape[1])


def repeat_curve(D: np.ndarray, k: int, stop: int | None = None,
                 chunk: int = 4096) -> np.ndarray:
    """:func:`distinct_share` of the last ``k`` distances after each distance of ``D``
    from the ``k``-th on (index n - k), up to ``stop`` distances: :class:`PradaState`'s
    repeat test for a whole stream at once.

    Examples
    --------
    >>> D = np.r_[np.arange(1.0, 11.0), np.full(5, 2.0)]
    >>> repeat_curve(D, 10)[[0, -1]].tolist()  # ten distinct, then five repeats of 2
    [1.0, 0.6]
    """
    from numpy.lib.stride_tricks import sliding_window_view

    D = np.asarray(D, dtype=float)
    stop = len(D) if stop is None else min(stop, len(D))
    if stop < k:
        return np.array([])
    windows = sliding_window_view(D[:stop], k)
    return np.concatenate([_distinct_counts(np.sort(windows[i:i + chunk], axis=1)) / k
                           for i in range(0, len(windows), chunk)])


def distinct_curve(D: np.ndarray, start: int, stop: int | None = None) -> np.ndarray:
    """The share of distinct values among the first n distances of ``D`` for n =
    ``start``..``stop`` (index n - start): :class:`PradaState`'s tests ``"R"`` and
    ``"U"`` for a whole stream at once (a distance within a relative 1e-9 of an earlier
    one repeats it).

    Examples
    --------
    >>> distinct_curve(np.array([1.0, 2.0, 2.0, 3.0, 1.0]), 3).tolist()
    [0.6666666666666666, 0.75, 0.6]
    """
    D = np.asarray(D, dtype=float)
    stop = len(D) if stop is None else min(stop, len(D))
    if stop < start:
        return np.array([])
    ordered: list[float] = []
    new = np.empty(stop, dtype=bool)
    for i, d in enumerate(D[:stop].tolist()):
        new[i] = not _is_repeat(ordered, d)
        bisect.insort(ordered, d)
    counts = np.cumsum(new)
    return counts[start - 1:] / np.arange(start, stop + 1)


def scale_curve(D: np.ndarray, start: int, stop: int | None = None) -> np.ndarray:
    """The mean of the first n distances of ``D`` for n = ``start``..``stop`` (index n -
    start): :class:`PradaState`'s test ``"S"`` for a whole stream at once.

    Examples
    --------
    >>> scale_curve(np.array([1.0, 2.0, 3.0, 6.0]), 2).tolist()
    [1.5, 2.0, 3.0]
    """
    D = np.asarray(D, dtype=float)
    stop = len(D) if stop is None else min(stop, len(D))
    if stop < start:
        return np.array([])
    return np.cumsum(D[:stop])[start - 1:] / np.arange(start, stop + 1)


def _distance_queries(labels: Any) -> np.ndarray:
    """The indices of the queries (predicted ``labels``, in order) that give PRADA a
    distance: all but the first query of each class."""
    codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)[1]
    first = np.zeros(len(codes), dtype=bool)
    if len(codes):
        first[np.unique(codes, return_index=True)[1]] = True
    return np.flatnonzero(~first)


def spread_curve(X: np.ndarray, labels: Any, start: int, stop: int | None = None) -> np.ndarray:
    """The spread test's statistic along a stream of queries ``X`` with predicted
    ``labels``: after the client's n-th distance, for n = ``start``..``stop`` (index n -
    start), the mean L2 distance between every pair of its queries so far (of any class):
    :class:`PradaState`'s test ``"P"`` for a whole stream at once.

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0], [6.0]])
    >>> spread_curve(X, ["a", "b", "a", "a"], 1).round(3).tolist()  # after queries 3, 4
    [2.0, 3.333]
    """
    from scipy.spatial.distance import cdist

    X = np.nan_to_num(np.asarray(X, dtype=float), nan=0.0)
    at = _distance_queries(labels)
    stop = len(at) if stop is None else min(stop, len(at))
    if stop < start:
        return np.array([])
    at = at[start - 1:stop]
    last = int(at[-1]) + 1
    total = np.zeros(last)  # the sum of the distances of query i to the queries before it
    for lo in range(1, last, 1024):
        hi = min(last, lo + 1024)
        G = cdist(X[lo:hi], X[:hi])
        G[np.triu_indices(hi - lo, k=lo, m=hi)] = 0.0  # query i and those after it
        total[lo:hi] = G.sum(axis=1)
    return _pair_means(total, at)


def _pair_means(totals: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The mean distance between every pair of the first ``at + 1`` queries, for each
    index of ``at``, from ``totals`` (each query's summed distance to the queries
    before it)."""
    q = at + 1.0  # queries so far
    return np.cumsum(totals)[at] / (q * (q - 1) / 2)


def _label_distance(counts: dict[str, int], total: int, shares: dict[str, float]) -> float:
    """The total variation distance between the class shares ``counts / total`` and
    ``shares`` (a class missing from either has share 0 there)."""
    out = sum(abs(counts.get(c, 0) / total - p) for c, p in shares.items())
    out += sum(k for c, k in counts.items() if c not in shares) / total
    return 0.5 * out


def label_shares(labels: Any) -> tuple[tuple[str, float], ...]:
    """The share of ``labels`` in each class, as :attr:`Prada.label_shares`.

    Examples
    --------
    >>> label_shares(["a", "b", "b", "b"])
    (('a', 0.25), ('b', 0.75))
    """
    classes, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    return tuple((str(c), float(k / counts.sum())) for c, k in zip(classes, counts,
                                                                   strict=True))


def label_curve(labels: Any, shares: Any, start: int, stop: int | None = None) -> np.ndarray:
    """The label test's statistic along a stream of queries with predicted ``labels``:
    after the client's n-th distance, for n = ``start``..``stop`` (index n - start), the
    total variation distance between the shares of the classes of all its queries so
    far and ``shares`` (:attr:`Prada.label_shares` or a dict). A query of a class not
    seen before gives no distance (PRADA's first query of each class).

    Examples
    --------
    >>> label_curve(["a", "b", "a", "a", "a"], {"a": 0.5, "b": 0.5}, 1).round(3).tolist()
    [0.167, 0.25, 0.3]
    """
    labels = np.asarray(labels).astype(str)
    shares = dict(shares)
    classes = sorted(set(labels.tolist()) | set(shares))
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[c] for c in labels.tolist()], dtype=int)
    p = np.array([shares.get(c, 0.0) for c in classes])
    at = _distance_queries(labels)
    stop = len(at) if stop is None else min(stop, len(at))
    if stop < start:
        return np.array([])
    at = at[start - 1:stop]
    onehot = np.zeros((int(at[-1]) + 1, len(classes)))
    onehot[np.arange(len(onehot)), codes[:len(onehot)]] = 1.0
    counts = np.cumsum(onehot, axis=0)[at]
    return 0.5 * np.abs(counts / (at + 1)[:, None] - p).sum(axis=1)


def first_flag(D: np.ndarray, prada: Prada, labels: Any = None,
               X: np.ndarray | None = None) -> tuple[int, str] | None:
    """After how many distances of the stream ``D`` ``prada`` flags the client, and by
    which test (``"W"``, ``"W<k>"``, ``"R<k>"``, ``"R"``, ``"U"``, ``"L"``, ``"S"``,
    ``"P"``, ``"N"`` or ``"G"``, as :attr:`PradaState.flagged_by`); None if never. The
    label test needs the predicted ``labels`` of the stream's queries (all of them, in
    order), the spread, likelihood and grid tests the queries ``X`` too; without, they are
    left out. (A grid flag before the first distance is at n = 0.)"""
    hits = []
    w = w_curve(D, prada.min_samples)
    below = np.flatnonzero(w < np.array([prada.threshold(n) for n in
                                         range(prada.min_samples,
                                               prada.min_samples + len(w))]))
    if len(below):
        hits.append((prada.min_samples + int(below[0]), 0, "W"))
    for i, k in enumerate(prada.windows):
        w = window_curve(D, k)
        below = np.flatnonzero(w < np.array([prada.window_threshold(i, n)
                                             for n in range(k, k + len(w))]))
        if len(below):
            hits.append((k + int(below[0]), i + 1, f"W{k}"))
    for i, k in enumerate(prada.repeats):
        r = repeat_curve(D, k)
        below = np.flatnonzero(r < np.array([prada.repeat_threshold(i, n)
                                             for n in range(k, k + len(r))]))
        if len(below):
            hits.append((k + int(below[0]), len(prada.windows) + i + 1, f"R{k}"))
    share = distinct_curve(D, prada.min_samples) \
        if prada.distinct_low or prada.distinct_high else np.array([])
    if len(share):
        bounds = np.array([prada.distinct_bounds(n) for n in
                           range(prada.min_samples, prada.min_samples + len(share))])
        order = len(prada.windows) + len(prada.repeats) + 1
        for i, (name, out) in enumerate((("R", share < bounds[:, 0]),
                                         ("U", share > bounds[:, 1]))):
            hit = np.flatnonzero(out)
            if len(hit):
                hits.append((prada.min_samples + int(hit[0]), order + i, name))
    uppers = []  # (statistic from the min_samples-th distance, its upper bound per n, name)
    if labels is not None and prada.label_high:
        uppers.append((label_curve(labels, prada.label_shares, prada.min_samples),
                       prada.label_bound, "L"))
    if prada.scale_high:
        uppers.append((scale_curve(D, prada.min_samples), prada.scale_bound, "S"))
    if labels is not None and X is not None and prada.spread_high:
        uppers.append((spread_curve(X, labels, prada.min_samples,
                                    stop=prada.min_samples + len(prada.spread_high) - 1),
                       prada.spread_bound, "P"))
    if labels is not None and X is not None and prada.likelihood_high and \
            prada.row_model is not None:
        uppers.append((likelihood_curve(prada.row_model.scores(X, labels), labels,
                                        prada.min_samples,
                                        stop=prada.min_samples + len(prada.likelihood_high) - 1),
                       prada.likelihood_bound, "N"))
    for value, limit, name in uppers:
        m = prada.min_samples
        hit = np.flatnonzero(value > np.array([limit(n) for n in range(m, m + len(value))]))
        if len(hit):
            order = len(prada.windows) + len(prada.repeats) + {"L": 3, "S": 4, "P": 5,
                                                                  "N": 6}[name]
            hits.append((m + int(hit[0]), order, name))
    if labels is not None and X is not None and prada.grid:
        n = grid_flag_distances(X, labels, prada)
        if n is not None:
            hits.append((n, len(prada.windows) + len(prada.repeats) + 7, "G"))
    if not hits:
        return None
    n, _, test = min(hits)
    return n, test


def grid_flag_distances(X: np.ndarray, labels: Any, prada: Prada) -> int | None:
    """The number of distances PRADA holds when the grid test flags the stream of
    queries ``X`` (predicted ``labels``): at its ``grid_flag``-th query off ``prada.grid``
    (None if never)."""
    hits = np.flatnonzero(off_grid(X, prada.grid))
    if len(hits) < prada.grid_flag:
        return None
    q = int(hits[prada.grid_flag - 1])
    return int(np.searchsorted(_distance_queries(labels), q, side="right"))


def _stream_distances(G: np.ndarray, order: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:func:`distances` of rows sent in ``order``, from their pairwise distances ``G``
    (the same growing sets and thresholds as :class:`PradaState`; each class keeps
    every row's distance to its growing set, updated when the set grows)."""
    nearest: dict[str, np.ndarray] = {}
    groups: dict[str, _Growing] = {}
    out = []
    for i in order:
        label = labels[i]
        group = groups.get(label)
        if group is None:
            groups[label] = group = _Growing(0)
            nearest[label] = G[i].copy()
            group.grew(0.0)
            continue
        d = float(nearest[label][i])
        out.append(d)
        if d > group.threshold:
            np.minimum(nearest[label], G[i], out=nearest[label])
            group.grew(d)
    return np.asarray(out)


def honest_streams(X: np.ndarray, labels: Any, orders: int, max_rows: int = 2000,
                   random_state: RandomState = 0) -> list[np.ndarray]:
    """PRADA's distance streams D of natural rows ``X`` sent in ``orders`` random orders,
    the first ``max_rows`` rows of each order."""
    from scipy.spatial.distance import cdist

    X = np.asarray(X, dtype=float)
    labels = np.asarray(labels).astype(str)
    rng = as_generator(random_state)
    G = cdist(X, X) if len(X) <= 4000 else None
    out = []
    for _ in range(orders):
        order = rng.permutation(len(X))[:max_rows]
        out.append(_stream_distances(G, order, labels) if G is not None
                   else distances(X[order], labels[order]))
    return out


def _curves(streams: list[np.ndarray], curve: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``curve`` of each stream, cut to the shortest (one row per stream)."""
    curves = [curve(D) for D in streams]
    n = min(len(c) for c in curves)
    return np.array([c[:n] for c in curves])


def honest_w_curves(X: np.ndarray, labels: Any, min_samples: int, orders: int,
                    max_rows: int = 2000, random_state: RandomState = 0) -> np.ndarray:
    """W_n of natural rows ``X`` sent in ``orders`` random orders: one row per order
    (W_n at column n - ``min_samples``), the first ``max_rows`` rows of each order."""
    return _curves(honest_streams(X, labels, orders, max_rows, random_state),
                   lambda D: w_curve(D, min_samples))


def _moving_mean(v: np.ndarray, start: int, frac: float) -> np.ndarray:
    """``v`` (one value per n, from n = ``start``) averaged over n' within ``frac`` x n."""
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(len(v))
    s = np.maximum(1, np.rint(frac * (start + i))).astype(int)
    lo, hi = np.maximum(0, i - s), np.minimum(len(v), i + s + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def w_band(curves: list[np.ndarray], min_samples: int, level: float = 0.1,
           smooth: float = 0.05) -> tuple[np.ndarray, np.ndarray, float]:
    """A simultaneous lower band for honest W_n: ``(centre, spread, c)`` such that no
    order of ``curves`` goes below ``centre - c * spread`` at any n.

    ``curves`` are arrays of W_n, one row per honest order, column n - ``min_samples``
    (arrays may differ in length). ``centre`` is the median of W_n over the orders that
    reach n, ``spread`` that median less W_n's ``level`` quantile, both averaged over n'
    within ``smooth`` x n of n; ``c`` is the largest ``(centre - W_n) / spread`` of any
    order at any n. The band is the honest distribution's own shape (centre and
    lower-tail spread per n, estimated from many orders, not from the one lowest order),
    lowered as one piece until it holds every calibration order at every n at once.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> curves = [0.9 + 0.01 * rng.standard_normal((200, 30))]
    >>> centre, spread, c = w_band(curves, 10)
    >>> bool((curves[0] >= centre - c * spread - 1e-12).all())
    True
    """
    width = max(c.shape[1] for c in curves)
    centre, spread = np.empty(width), np.empty(width)
    for j in range(width):
        values = np.concatenate([c[:, j] for c in curves if c.shape[1] > j])
        centre[j] = np.median(values)
        spread[j] = centre[j] - np.quantile(values, level)
    centre = _moving_mean(centre, min_samples, smooth)
    spread = np.maximum(_moving_mean(spread, min_samples, smooth), 1e-3)
    c = max(float(((centre[:k.shape[1]] - k) / spread[:k.shape[1]]).max())
            for k in curves if k.shape[1])
    return centre, spread, max(c, 0.0)


Band = tuple[np.ndarray, np.ndarray, float]  # w_band's (centre, spread, c)


def honest_bands(X: np.ndarray, labels: Any, min_samples: int = 10,
                 windows: tuple[int, ...] = (), orders: int = 50, short_orders: int = 1000,
                 short: int = 200, max_rows: int = 2000, random_state: RandomState = 0,
                 repeats: tuple[int, ...] = (), distinct: bool = False,
                 label_test: bool = False, label_level: float | None = None,
                 widen: float | None = None,
                 scale: bool = False,
                 spread_test: bool = False,
                 likelihood_test: bool = False) -> tuple[Band, dict[str, Band]]:
    """:func:`w_band` of the rows ``X`` sent in ``orders`` random orders of at most
    ``max_rows`` rows and ``short_orders`` of ``short`` rows, none over half the rows
    (what :func:`calibrate_prada` thresholds): the band of W of all distances, and by
    test name the band of each window's W (``"W<k>"``) and of each repeat test's
    distinct share (``"R<k>"``; its spread is the tolerance, at least ``REPEAT_FLOOR``
    repeats, and its c is 1). With ``distinct``, also the bands of the share of distinct
    values among all distances (``"R"``) and of minus that share (``"U"``: its upper
    band), from the ``min_samples``-th distance on, tolerances as the repeat tests', up to
    the number of distances every order reaches (the short orders').
    With ``label_test``, also the band of minus the label test's statistic (``"L"``,
    :func:`label_band` at ``label_level``, for a detector widened by ``widen``). With
    ``scale``, also the band of minus the mean of the distances (``"S"``: its upper band,
    :func:`scale_curve`), up to the number of distances every order reaches and at most
    a quarter of the rows. With ``spread_test``, also the band of minus the mean distance
    between every pair of queries (``"P"``, :func:`spread_curve`), as far as the scale
    test's, from orders drawn after all the others (so that the other bands are those
    calibrated without it). With ``likelihood_test``, last, the band of minus the mean
    negative log-likelihood of the queries (``"N"``, :func:`_likelihood_band`). Tests
    longer than the orders' streams are left out."""
    X = np.asarray(X, dtype=float)
    half = len(X) // 2
    if half <= min_samples + 1:
        raise ConfigurationError(f"calibrating PRADA needs more than {2 * (min_samples + 1)} "
                                 f"honest rows, not {len(X)}")
    rng = as_generator(random_state)
    groups = [honest_streams(X, labels, orders, min(max_rows, half), rng)]
    if short_orders and short > min_samples + 1:
        groups.append(honest_streams(X, labels, short_orders, min(short, half), rng))

    def band(curve: Callable[[np.ndarray], np.ndarray], start: int) -> Band:
        return w_band([_curves(g, curve) for g in groups], start)

    whole = band(lambda D: w_curve(D, min_samples), min_samples)
    shortest = min(len(D) for g in groups for D in g)
    bands = {f"W{k}": band(lambda D, k=k: window_curve(D, k), k)  # type: ignore[misc]
             for k in windows if k <= shortest}
    for k in repeats:
        if k <= shortest:
            centre, spread, c = band(lambda D, k=k: repeat_curve(D, k), k)  # type: ignore[misc]
            bands[f"R{k}"] = (centre, np.maximum(c * spread, REPEAT_FLOOR / k), 1.0)
    if distinct:
        curves = [_curves(g, lambda D: distinct_curve(D, min_samples)) for g in groups]
        # tested only as far as every calibration order reaches: beyond, the band would
        # rest on the few long orders (a contraceptive stream was flagged by U there)
        reach = min(x.shape[1] for x in curves)
        for name, sign in (("R", 1.0), ("U", -1.0)):
            centre, spread, c = w_band([sign * x for x in curves], min_samples)
            centre, spread = centre[:reach], spread[:reach]
            n = np.arange(min_samples, min_samples + len(centre))
            bands[name] = (centre, np.maximum(c * spread, REPEAT_FLOOR / n), 1.0)
    if scale:
        # as far as every calibration order reaches, and no further than a quarter of the
        # rows: an order that takes half the rows draws its late rows from what its first
        # ones left, so orders agree more there than two clients sampling the population
        # do (honest Digits clients went above a band set up to 300 distances of 314-row
        # orders, and one honest breast-cancer client of the PRADA study, seed 4, above
        # one set up to 88 distances of 90-row orders, at 74)
        curves = [-_curves(g, lambda D: scale_curve(D, min_samples)) for g in groups]
        reach = max(0, min(min(x.shape[1] for x in curves), len(X) // 4 - min_samples + 1))
        centre, spread, c = w_band(curves, min_samples)
        bands["S"] = (centre[:reach], spread[:reach], c)
    if label_test:
        bands["L"] = label_band(labels, min_samples, orders, short_orders, short, max_rows, rng,
                                level=label_level, widen=widen)
    if spread_test:
        bands["P"] = _spread_band(X, labels, min_samples, orders, short_orders, short,
                                  max_rows, rng)
    if likelihood_test:
        bands["N"] = _likelihood_band(X, labels, min_samples, orders, rng)
    return whole, bands


LIKELIHOOD_ORDERS = 20  # orders of each half, per split, for the likelihood test's band


def _likelihood_band(X: np.ndarray, labels: Any, min_samples: int, splits: int,
                     rng: np.random.Generator, per_split: int = LIKELIHOOD_ORDERS) -> Band:
    """:func:`w_band` of minus :func:`likelihood_curve` for honest clients, as far as
    the scale test's (at most a quarter of the rows).

    An honest client's rows are not the owner's, and a model fitted on rows scores
    those rows better than new ones. So each of ``splits`` random splits fits the row
    model on one half of ``X`` and scores the other half, sent in ``per_split`` random
    orders; the detector's own model, fitted on all of ``X``, scores new rows no worse
    than these half-models do."""
    X = np.asarray(X, dtype=float)
    labels = np.asarray(labels).astype(str)
    quarter = len(X) // 4 - min_samples + 1  # distances tested, at most
    half = len(X) // 2
    if quarter <= 0 or splits <= 0:
        return np.array([]), np.array([]), 0.0
    edges = row_edges(X)
    curves = []
    for _ in range(splits):
        perm = rng.permutation(len(X))
        fit, held = perm[:half], perm[half:]
        scores = fit_row_model(X[fit], labels[fit], edges).scores(X[held], labels[held])
        for _ in range(per_split):
            order = rng.permutation(len(held))
            curves.append(likelihood_curve(scores[order], labels[held][order], min_samples,
                                           stop=min_samples + quarter - 1))
    width = min(len(c) for c in curves)
    if width == 0:
        return np.array([]), np.array([]), 0.0
    centre, spread, c = w_band([-np.array([c[:width] for c in curves])], min_samples)
    return centre, spread, c


def _spread_band(X: np.ndarray, labels: Any, min_samples: int, orders: int,
                 short_orders: int, short: int, max_rows: int,
                 rng: np.random.Generator) -> Band:
    """:func:`w_band` of minus :func:`spread_curve` over random orders of the rows ``X``
    (as :func:`honest_bands`' orders, none over half the rows), cut where the scale test
    is: as far as every order reaches and at most a quarter of the rows."""
    from scipy.spatial.distance import cdist

    labels = np.asarray(labels).astype(str)
    half = len(X) // 2
    quarter = len(X) // 4 - min_samples + 1  # distances tested, at most
    G = cdist(X, X) if len(X) <= 4000 else None
    groups = []
    for count, size in ((orders, min(max_rows, half)), (short_orders, min(short, half))):
        if not count or size <= min_samples + 1:
            continue
        curves = []
        for _ in range(count):
            order = rng.permutation(len(X))[:size]
            at = _distance_queries(labels[order])
            last = len(at) if quarter <= 0 else min(len(at), quarter + min_samples - 1)
            if last < min_samples:
                curves.append(np.array([]))
                continue
            q = int(at[last - 1]) + 1  # the queries up to the last distance tested
            sub = order[:q]
            P = G[np.ix_(sub, sub)] if G is not None else cdist(X[sub], X[sub])
            curves.append(_pair_means(np.tril(P, -1).sum(axis=1), at[min_samples - 1:last]))
        groups.append(-np.array([c[:min(len(c) for c in curves)] for c in curves]))
    reach = max(0, min([g.shape[1] for g in groups] + [quarter]))
    centre, spread, c = w_band(groups, min_samples)
    return centre[:reach], spread[:reach], c


def label_band(labels: Any, min_samples: int = 10, orders: int = 50,
               short_orders: int = 1000, short: int = 200, max_rows: int = 2000,
               random_state: RandomState = 0, drift: float | None = None,
               level: float | None = None, level_orders: int | None = None,
               widen: float | None = None) -> Band:
    """The band of minus the label test's statistic (:func:`label_curve`) for honest
    clients of a model whose predicted classes on the owner's rows are ``labels``:
    ``(centre, tolerance, 1 / widen)``, its threshold ``centre - tolerance`` (the
    detector's widening, ``widen`` x c, leaves it there).

    An honest client's classes are modelled as draws from the population, which the
    owner knows only through its rows: each calibration order draws its queries'
    classes with replacement from ``labels`` and is compared with the shares of a
    bootstrap resample of ``labels`` (the larger of ``orders`` and ``short_orders`` of
    ``max_rows`` queries, ``short_orders`` of ``short``), so that the band holds the
    client's sampling and the owner's together. Their median and upper-tail spread per
    n give the band's shape (:func:`w_band`).

    Since the model is explicit, the band is set at a stated false-positive rate rather
    than at the worst calibration order widened: ``level_orders`` more orders of
    ``short`` queries (default ten over ``level``) are simulated the same way, and the
    multiple c of the spread is the ``1 - level`` quantile of each order's largest
    deviation in spreads over its first ``short`` queries (``level``, default
    ``LABEL_LEVEL`` = 1e-5: one honest stream in 100,000 flagged by the sampling alone;
    beyond ``short`` queries the same c). The tolerance is ``c * spread``, but never
    under one query's worth (1/n) nor under ``drift`` (default ``LABEL_DRIFT``): a
    model's classes on new rows differ from those on its own training rows (a deep
    tree fits its training labels), which no resample of those rows shows."""
    labels = np.asarray(labels).astype(str)
    if len(labels) == 0:
        raise ConfigurationError("calibrating PRADA's label test needs the owner's labels")
    drift = LABEL_DRIFT if drift is None else drift
    level = LABEL_LEVEL if level is None else level
    widen = WIDEN if widen is None else widen
    if not 0 < level < 1:
        raise ConfigurationError(f"the label test's level must be between 0 and 1, not {level}")
    level_orders = math.ceil(10 / level) if level_orders is None else level_orders
    shares = dict(label_shares(labels))
    classes = sorted(shares)
    p = np.array([shares[c] for c in classes])
    rng = as_generator(random_state)
    groups = []
    for count, size in ((max(orders, short_orders), max_rows), (short_orders, short)):
        if not count or size <= min_samples + len(classes):
            continue
        curves = []
        for _ in range(count):
            boot = rng.multinomial(len(labels), p) / len(labels)
            stream = np.asarray(classes)[rng.choice(len(classes), size=size, p=p)]
            curves.append(label_curve(stream, dict(zip(classes, boot, strict=True)),
                                      min_samples))
        width = min(len(c) for c in curves)  # a class drawn late gives fewer distances
        groups.append(-np.array([c[:width] for c in curves]))
    centre, spread, c = w_band(groups, min_samples)
    reach = min(len(centre), short - min_samples + 1)
    if len(classes) > 1 and level_orders > 0 and reach > 0:
        worst = _label_deviations(p, len(labels), -centre[:reach], spread[:reach],
                                  min_samples, level_orders, rng)
        c = float(np.quantile(worst, 1 - level))
    n = np.arange(min_samples, min_samples + len(centre))
    return centre, np.maximum(np.maximum(c * spread, 1.0 / n), drift), 1.0 / widen


def _label_deviations(p: np.ndarray, owner: int, median: np.ndarray, spread: np.ndarray,
                      min_samples: int, orders: int, rng: np.random.Generator,
                      chunk: int = 25_000) -> np.ndarray:
    """For ``orders`` simulated honest orders (classes drawn with shares ``p``, compared
    with the shares of a bootstrap of ``owner`` rows), the largest ``(TV_n - median_n) /
    spread_n`` over the distances n = ``min_samples``.. that ``median`` covers, where
    TV_n is :func:`label_curve`'s statistic (the first query of each class gives no
    distance). Vectorised over orders, one chunk at a time."""
    k, width = len(p), len(median)
    length = width + min_samples - 1 + k  # queries holding the last distance, at most
    bounds = np.cumsum(p)[:-1].astype(np.float32)
    before = np.arange(min_samples - 1, min_samples - 1 + width, dtype=np.int32)  # n - 1
    t = np.arange(1, length + 1, dtype=np.float32)
    median, spread = median.astype(np.float32), spread.astype(np.float32)
    out = []
    for start in range(0, orders, chunk):
        size = min(chunk, orders - start)
        boot = (rng.multinomial(owner, p, size=size) / owner).astype(np.float32)
        u = rng.random((size, length), dtype=np.float32)
        tv = np.zeros((size, length), np.float32)
        firsts = np.empty((size, k), np.int32)
        rest = np.broadcast_to(t, (size, length)).copy()  # queries of the classes not counted
        for j in range(k):
            if j < k - 1:
                hit = u < bounds[j] if j == 0 else (u < bounds[j]) & (u >= bounds[j - 1])
                count = np.cumsum(hit, axis=1, dtype=np.int32).astype(np.float32)
                rest -= count
            else:
                hit, count = u >= bounds[-1], rest
            share = count / t
            share -= boot[:, j:j + 1]
            tv += np.abs(share)
            first = hit.argmax(axis=1).astype(np.int32)
            first[~hit[np.arange(size), first]] = length + width  # never drawn
            firsts[:, j] = first
        firsts.sort(axis=1)
        # the n-th distance comes with query (n - 1) + #{l : firsts_l - l <= n - 1} (0-based)
        gap = firsts - np.arange(k, dtype=np.int32)
        at = np.broadcast_to(before, (size, width)).copy()
        for j in range(k):
            at += gap[:, j:j + 1] <= before
        dev = np.take_along_axis(tv, np.minimum(at, length - 1), axis=1)
        dev *= 0.5
        dev -= median
        dev /= spread
        out.append(dev.max(axis=1))
    return np.concatenate(out) if out else np.array([])


def honest_band(X: np.ndarray, labels: Any, min_samples: int = 10, orders: int = 50,
                short_orders: int = 1000, short: int = 200, max_rows: int = 2000,
                random_state: RandomState = 0) -> Band:
    """:func:`honest_bands`' band of W of all distances."""
    return honest_bands(X, labels, min_samples, (), orders, short_orders, short, max_rows,
                        random_state)[0]


WIDEN = 1.5  # see calibrate_prada: the band's c, widened for rows the owner does not hold
WINDOWS = (15, 30)  # see calibrate_prada: the recent-window tests
REPEATS = (15, 30)  # see calibrate_prada: the repeat tests
# a repeat test's band is never narrower than this many repeats in its window: a pair of
# equal or equally spaced natural rows repeats a distance or two where the owner's rows
# (often without any repeat) would say none is ever seen
REPEAT_FLOOR = 2
# the label test's tolerance is never under this total variation distance: the model's
# classes on new rows may differ this much from those on the owner's (training) rows
LABEL_DRIFT = 0.1
# the label test's per-stream false-positive rate from sampling alone (see label_band)
LABEL_LEVEL = 1e-5


def _thresholds(band: Band, widen: float) -> np.ndarray:
    centre, spread, c = band
    return np.clip(centre - widen * c * spread, 1e-6, 1 - 1e-6)


def calibrate_prada(X: np.ndarray, labels: Any | None, min_samples: int = 10, orders: int = 50,
                    widen: float = WIDEN, short_orders: int = 1000, short: int = 200,
                    max_rows: int = 2000, windows: tuple[int, ...] = WINDOWS,
                    random_state: RandomState = 0,
                    repeats: tuple[int, ...] = REPEATS, distinct: bool = True,
                    label_test: bool = True, label_level: float = LABEL_LEVEL,
                    scale_test: bool = True, spread_test: bool = True,
                    likelihood_test: bool = True, grid_test: bool = True,
                    grid_flag: int = 3) -> Prada:
    """A PRADA detector with per-n thresholds calibrated on the owner's natural rows.

    The rows ``X`` (with the model's ``labels``; None for a model without classes, a
    regressor, whose queries PRADA keeps in one group: :attr:`Prada.by_class`) are sent
    in ``orders`` random orders of
    at most ``max_rows`` rows, and in ``short_orders`` more of ``short`` rows (W of a few
    distances varies most, and these orders are cheap); no order takes more than half of
    the rows, so that orders differ as honest clients' queries do. From their W_n
    curves, :func:`w_band` gives the honest centre and lower-tail spread per n and the
    multiple c of the spread that holds every calibration order at every n; the
    threshold for n distances is ``centre - widen * c * spread``. ``widen`` covers honest
    rows the owner does not hold: calibrated on one half of an owner's rows, the other
    half's orders needed c up to 1.48 times the first half's (7 targets of the PRADA
    study x 3 seeds, 1,050 orders per half, both ways). Beyond the calibrated volume,
    ``delta`` is the lowest threshold of its second half.

    Each window size k of ``windows`` gets its own thresholds the same way, from W of
    the last k distances of the same orders (a window longer than the shortest order's
    stream is dropped); a window is tested only up to the longest calibration order's n.
    The default sizes, 15 and 30, were chosen after seeing the PRADA study's attacks
    (docs/defences.md); the thresholds use only ``X``.

    Each size k of ``repeats`` gets thresholds for the share of distinct values among
    the last k distances (:func:`repeat_curve`), the same way, except that the band's
    ``c * spread`` is never below ``REPEAT_FLOOR / k``: the owner's rows may show no
    repeat at all, and one band as narrow as that would flag the first honest pair of
    equal distances. (Added after seeing that the tree attacks of the PRADA study's
    held-out seeds escaped every W test while in their busiest windows 12-14 of 15
    distances repeat; docs/defences.md.)

    With ``distinct``, the share of distinct values among all distances gets a lower
    and an upper per-n bound the same way (tolerance at least ``REPEAT_FLOOR / n``):
    too many repeats, or too few where the owner's rows repeat distances at a steady
    rate (added after seeing that Lowd-Meek's and adaptive retraining's queries on
    breast cancer, whose natural rows are 1-10 scores, almost never repeat a distance
    while natural streams repeat two in three; docs/defences.md).

    With ``label_test``, the client's mix of predicted classes is tested against the
    owner's (:func:`label_band`; added after seeing that uniform, line-search and
    adaptive retraining on breast cancer send nine queries in ten to one class while the
    owner's rows are split about evenly; docs/defences.md). Its bound is set at the
    per-stream false-positive rate ``label_level`` of its sampling model, not widened.
    Turn it off where honest clients' mix of cases is known to differ from the owner's
    rows (a specialist clinic).

    With ``scale_test``, the mean of the client's distances gets a per-n upper bound the
    same way as W's lower one (:func:`scale_curve`), up to the number of distances every
    calibration order reaches and at most a quarter of the rows (added after seeing that
    equation solving on the diabetes MLP and on the one-vs-rest contraceptive model, whose
    uniform random queries give distances more normal than natural rows', escaped every
    shape test while their mean distance is two to three times an honest client's;
    docs/defences.md). Its premise is
    that honest clients' rows spread as the owner's do; turn it off where they are known
    to spread wider.

    With ``spread_test``, the mean distance between every pair of the client's queries
    (of any class) gets a per-n upper bound the same way (:func:`spread_curve`), as far
    as the scale test's (added after seeing that the scale test, which averages each
    query's distance to its nearest earlier neighbour of its class, caught equation
    solving on the one-vs-rest contraceptive model only after 99% on 10 of 25 seeds,
    while the pairs' mean stood clear of every honest stream from 10-20 queries on;
    docs/defences.md). Same premise as the scale test.

    With ``likelihood_test``, the mean negative log-likelihood of the client's queries
    under a per-class model of the owner's rows (:mod:`stealml.defences.likelihood`) gets
    a per-n upper bound the same way, from models fitted on one half of the rows scoring
    the other half (:func:`_likelihood_band`), as far as the scale test's (added after
    seeing that uniform, line-search and adaptive retraining on breast cancer, whose
    first queries are uniform draws on the data's own 1-10 lattice, reached 99% test
    agreement before any distance or class-mix test flagged them on 6 of 35 seeds;
    docs/defences.md). Its premise is that honest clients' rows are distributed as the
    owner's rows, class by class; turn it off where they are known not to be.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 4))
    >>> prada = calibrate_prada(X, np.zeros(400), orders=3, short_orders=30)
    >>> prada.threshold(10) < prada.threshold(150) < 1 and prada.windows == (15, 30)
    True
    >>> prada.repeats, prada.repeat_threshold(0, 15)  # no repeats in X: 4 of 15 flag
    ((15, 30), 0.8)
    """
    if widen < 1:
        raise ConfigurationError(f"widen must be at least 1, not {widen}")
    if label_test and not 0 < label_level < 1:  # checked before the bands are built
        raise ConfigurationError(f"the label test's level must be between 0 and 1, not "
                                 f"{label_level}")
    by_class = labels is not None
    if not by_class:  # a model without classes: one group, no label test
        labels, label_test = np.zeros(len(X), int), False
    whole, bands = honest_bands(X, labels, min_samples, tuple(windows), orders, short_orders,
                                short, max_rows, random_state, tuple(repeats), distinct,
                                label_test, label_level, widen, scale_test, spread_test,
                                likelihood_test)
    prada = prada_from_bands(whole, bands, min_samples, widen,
                             label_shares(labels) if label_test else (),
                             fit_row_model(X, labels) if likelihood_test else None,
                             lattice(X) if grid_test else (), grid_flag)
    return prada if by_class else replace(prada, by_class=False)


def prada_from_bands(whole: Band, bands: dict[str, Band], min_samples: int = 10,
                     widen: float = WIDEN,
                     shares: tuple[tuple[str, float], ...] = (),
                     rows: RowModel | None = None,
                     grid: tuple[tuple[int, float, float], ...] = (),
                     grid_flag: int = 3) -> Prada:
    """The detector :func:`calibrate_prada` makes from :func:`honest_bands`' bands
    (by test name: ``"W<k>"`` windows, ``"R<k>"`` repeat tests, ``"R"`` and ``"U"``
    the share of distinct values among all distances and minus it, ``"L"`` minus the
    label test's statistic, which needs the owner's ``shares``, ``"S"`` minus the mean of
    the distances, ``"P"`` minus the pairs' mean distance, ``"N"`` minus the mean
    negative log-likelihood, which needs the owner's row model ``rows``), and the grid
    test's lattice ``grid`` with its count ``grid_flag``."""
    thresholds = _thresholds(whole, widen)
    tail = float(thresholds[len(thresholds) // 2:].min())
    windows = {int(t[1:]): b for t, b in bands.items() if t.startswith("W")}
    repeats = {int(t[1:]): b for t, b in bands.items() if t.startswith("R") and t != "R"}
    low = _thresholds(bands["R"], widen) if "R" in bands else ()
    if "U" in bands:  # the band of minus the share: its threshold, negated, is an upper bound
        centre, tol, c = bands["U"]
        high = -(centre - widen * c * tol)
    scale_high: tuple[float, ...] = ()
    if "S" in bands:  # the band of minus the mean, as U's
        centre, spread, c = bands["S"]
        scale_high = tuple(float(t) for t in np.maximum(-(centre - widen * c * spread),
                                                         1e-12))
    spread_high: tuple[float, ...] = ()
    if "P" in bands:  # the band of minus the pairs' mean distance, as S's
        centre, spread, c = bands["P"]
        spread_high = tuple(float(t) for t in np.maximum(-(centre - widen * c * spread),
                                                          1e-12))
    likelihood_high: tuple[float, ...] = ()
    if "N" in bands and len(bands["N"][0]):  # as S's
        if rows is None:
            raise ConfigurationError("PRADA's likelihood test needs the owner's row model")
        centre, spread, c = bands["N"]
        likelihood_high = tuple(float(t) for t in np.maximum(-(centre - widen * c * spread),
                                                              1e-12))
    label_high: tuple[float, ...] = ()
    if "L" in bands:
        if not shares:
            raise ConfigurationError("PRADA's label test needs the owner's label shares")
        centre, tol, c = bands["L"]
        label_high = tuple(float(t) for t in -(centre - widen * c * tol))
    return Prada(delta=tail, min_samples=min_samples,
                 thresholds=tuple(float(t) for t in thresholds),
                 windows=tuple(windows),
                 window_thresholds=tuple(tuple(float(t) for t in _thresholds(b, widen))
                                         for b in windows.values()),
                 repeats=tuple(repeats),
                 repeat_thresholds=tuple(tuple(float(t) for t in _thresholds(b, widen))
                                         for b in repeats.values()),
                 distinct_low=tuple(float(t) for t in low),
                 distinct_high=tuple(float(t) for t in high) if "U" in bands else (),
                 label_shares=tuple(shares) if label_high else (), label_high=label_high,
                 scale_high=scale_high, spread_high=spread_high,
                 row_model=rows if likelihood_high else None,
                 likelihood_high=likelihood_high, grid=tuple(grid), grid_flag=grid_flag)


def prada_from_file(path: str | Path, n_columns: int,
                    labels_of: Callable[[np.ndarray], Any] | None) -> Prada:
    """The PRADA detector a file describes, checked before the first query.

    ``.json``: a calibration written by :meth:`Prada.save` (``stealml calibrate-prada``).
    ``.npy``: the owner's natural rows in the model space (``n_columns`` wide), on which
    :func:`calibrate_prada` sets per-n thresholds now, grouping rows by the class
    ``labels_of(rows)`` gives them (the model's predictions). ``labels_of`` is None for a
    model without classes (a regressor): one group (:attr:`Prada.by_class`).

    Raises
    ------
    ConfigurationError
        The file cannot be read, has the wrong shape, or too few rows to calibrate on, or
        was calibrated for a classifier and the model is a regressor (or the reverse).
    """
    path = Path(path)
    if path.suffix == ".json":
        prada = Prada.load(path)
        if prada.by_class != (labels_of is not None):
            made, model = (("a classifier", "a regressor") if prada.by_class
                           else ("a regressor", "a classifier"))
            raise ConfigurationError(f"the PRADA calibration {path} was made for {made}, "
                                     f"but the model is {model}: calibrate it on this "
                                     f"model (stealml calibrate-prada)")
        return prada
    if path.suffix != ".npy":
        raise ConfigurationError(f"a PRADA calibration is a .json file (stealml "
                                 f"calibrate-prada) or a .npy of the owner's rows, not {path}")
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the PRADA reference {path}: {exc}") from exc
    if rows.ndim != 2 or rows.shape[1] != n_columns or \
            not np.issubdtype(rows.dtype, np.number) or not np.isfinite(rows).all():
        raise ConfigurationError(f"the PRADA reference {path} has shape {rows.shape}, but "
                                 f"the model space has {n_columns} columns (finite values)")
    return calibrate_prada(rows, None if labels_of is None else labels_of(rows))

"""An out-of-distribution rate monitor: a cheaper heuristic than PRADA.

The model owner knows its training data. A query is *out of distribution* when its
distance to the nearest training row exceeds the ``quantile`` (0.99 by default) of the
training rows' own nearest-neighbour distances (leave-one-out), so an honest client's
queries, drawn from the same distribution, are out with probability about
1 - quantile, but only roughly: that quantile is estimated from the owner's rows, and where they
are few the rate for new rows varies from owner to owner (breast cancer, 166 reference
rows: 5.4% of new rows out at one split, against 1% asked). By the conformal argument,
with m of the n reference rows beyond the radius, the rate for a new row is distributed
as Beta(m + 1, n - m); the monitor takes its ``1 - confidence`` quantile as the honest
rate (:attr:`OutOfDistribution.rate`). A client is flagged once the number k of its n
queries that are out is improbable under that rate: the binomial tail
P[K >= k | n, rate] < ``alpha``.
With alpha = 1e-6 a client whose first queries all fall outside the data (equation
solving's random points in a wide feature space) is flagged within a handful of
queries; an honest client is flagged with probability below alpha per query.

References: the query-distribution monitors surveyed by Juuti et al., "PRADA", IEEE
EuroS&P 2019, section VII; Kesarwani et al., "Model extraction warning in MLaaS
paradigm", ACSAC 2018 (coverage of the feature space by a client's queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import beta, binom
from sklearn.neighbors import NearestNeighbors

from stealml.exceptions import ConfigurationError
from stealml.random import RandomState, as_generator

__all__ = ["OutOfDistribution", "OutOfDistributionState"]


@dataclass(frozen=True, eq=False)
class OutOfDistribution:
    """The out-of-distribution rate detector's settings and its reference data.

    Parameters
    ----------
    reference : array (n, d)
        Model-space rows of the owner's data (its training split); at least 10.
    quantile : float
        A query is out when farther from the data than this quantile of the data's own
        nearest-neighbour distances (0.5 <= quantile < 1).
    alpha : float
        Flag when the binomial tail of the client's out count is below this (0 < alpha < 1).
    confidence : float
        Chance that the honest rate is above the rate the test assumes (the upper
        ``1 - confidence`` quantile of its conformal distribution; 0 < confidence < 1).
    min_queries : int
        Queries observed before a client can be flagged.
    max_reference : int
        Rows of ``reference`` kept (a seeded sample) to bound the cost per query.
    random_state : int or Generator
        Seed of that sample.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ood = OutOfDistribution(rng.normal(0, 0.1, (500, 5)))
    >>> ood.new_state().update(rng.uniform(-1, 1, (20, 5)), np.zeros(20)) is not None
    True
    """

    reference: Any
    quantile: float = 0.99
    alpha: float = 1e-6
    confidence: float = 1e-3
    min_queries: int = 3
    max_reference: int = 2000
    random_state: RandomState = 0
    name = "ood"
    _index: list[Any] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        ref = np.asarray(self.reference, dtype=float)
        if ref.ndim != 2 or len(ref) < 10 or not np.isfinite(ref).all():
            raise ConfigurationError("the out-of-distribution monitor needs at least 10 "
                                     "finite reference rows (the owner's training data)")
        if not 0.5 <= self.quantile < 1:
            raise ConfigurationError(f"quantile must be in [0.5, 1), not {self.quantile}")
        if not 0 < self.alpha < 1:
            raise ConfigurationError(f"alpha must be between 0 and 1, not {self.alpha}")
        if not 0 < self.confidence < 1:
            raise ConfigurationError(f"confidence must be between 0 and 1, not "
                                     f"{self.confidence}")
        if int(self.min_queries) != self.min_queries or self.min_queries < 1:
            raise ConfigurationError(f"min_queries must be >= 1, not {self.min_queries}")
        if int(self.max_reference) != self.max_reference or self.max_reference < 10:
            raise ConfigurationError(f"max_reference must be >= 10, not {self.max_reference}")

    def _fitted(self) -> tuple[NearestNeighbors, float]:
        if not self._index:  # fitted once, on first use, and shared by every client
            ref = np.asarray(self.reference, dtype=float)
            if len(ref) > self.max_reference:
                rng = as_generator(self.random_state)
                ref = ref[rng.choice(len(ref), self.max_reference, replace=False)]
            nn = NearestNeighbors(n_neighbors=2).fit(ref)
            own = nn.kneighbors(ref, 2, return_distance=True)[0][:, 1]
            radius = float(np.quantile(own, self.quantile))
            beyond = int((own > radius).sum())
            rate = float(beta.ppf(1 - self.confidence, beyond + 1, len(own) - beyond))
            self._index.extend([nn, radius, rate])
        return self._index[0], self._index[1]

    @property
    def radius(self) -> float:
        """Distance beyond which a query is out of distribution."""
        return self._fitted()[1]

    @property
    def rate(self) -> float:
        """The rate of out-of-distribution rows the test allows an honest client: the
        upper ``1 - confidence`` quantile of the conformal Beta(m + 1, n - m) (m of the n
        reference rows beyond :attr:`radius`)."""
        self._fitted()
        return float(self._index[2])

    def far(self, X: Any) -> np.ndarray:
        """Whether each row of ``X`` is out of distribution (farther than :attr:`radius`
        from every reference row)."""
        nn, radius = self._fitted()
        X = np.nan_to_num(np.asarray(X, dtype=float), nan=0.0)
        return nn.kneighbors(X, 1, return_distance=True)[0][:, 0] > radius

    def tails(self, n: Any, k: Any) -> np.ndarray:
        """The binomial tail P[K >= k] of ``k`` rows out among ``n`` queries (1 where k is
        0), the statistic compared with :attr:`alpha`."""
        n, k = np.asarray(n), np.asarray(k)
        return np.where(k > 0, binom.sf(k - 1, n, self.rate), 1.0)

    def first_flag(self, far: Any) -> int | None:
        """The 1-based query at which a client whose queries are out of distribution
        where ``far`` is True (in order) is flagged; None if never. The same as feeding
        them to a new state, without the nearest-neighbour search per client."""
        far = np.asarray(far, dtype=bool)
        n = np.arange(1, len(far) + 1)
        hits = np.flatnonzero((n >= self.min_queries)
                              & (self.tails(n, np.cumsum(far)) < self.alpha))
        return int(hits[0]) + 1 if len(hits) else None

    def new_state(self) -> OutOfDistributionState:
        self._fitted()
        return OutOfDistributionState(self)


class OutOfDistributionState:
    """One client's out-of-distribution record (``queries``, ``out``, ``statistic``: the
    latest binomial tail, ``flagged_at``: the 1-based query that raised the flag)."""

    def __init__(self, detector: OutOfDistribution) -> None:
        self.detector = detector
        self.queries = 0
        self.out = 0
        self.statistic: float | None = None
        self.min_statistic: float | None = None
        self.flagged_at: int | None = None

    def update(self, X: np.ndarray, labels: Any) -> int | None:
        """Observe queries in order; returns the index of the row that raised the flag
        (rows after it are not observed), or None."""
        if self.flagged_at is not None or len(X) == 0:
            return None
        far = self.detector.far(X)
        n = self.queries + np.arange(1, len(X) + 1)
        k = self.out + np.cumsum(far)
        tails = self.detector.tails(n, k)
        hits = np.flatnonzero((n >= self.detector.min_queries) & (tails < self.detector.alpha))
        last = int(hits[0]) if len(hits) else len(X) - 1  # rows after a flag are not seen
        self.queries, self.out = int(n[last]), int(k[last])
        self.statistic = float(tails[last])
        low = float(tails[:last + 1].min())
        self.min_statistic = low if self.min_statistic is None else min(self.min_statistic, low)
        if len(hits):
            self.flagged_at = self.queries
            return last
        return None

    def summary(self) -> dict[str, Any]:
        return {"detector": "ood", "queries": self.queries, "flagged_at": self.flagged_at,
                "out": self.out, "statistic": self.statistic,
                "min_statistic": self.min_statistic}


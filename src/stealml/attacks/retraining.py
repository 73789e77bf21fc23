"""Retraining from labels: query, label, train a local model, as in the paper's section 6.

Three strategies differ in where they query: uniformly (``retrain-uniform``), near the
target's boundary by line searches with the oracle (``retrain-line-search``), or where
the current local model is least sure, round after round (``retrain-adaptive``, in
:mod:`stealml.attacks.adaptive`). The local model's class and hyper-parameters are
chosen by extract-and-test on the answers bought (:mod:`stealml.attacks._selection`).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 6 (retraining strategies (1) and (2)).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn.base import is_classifier

from stealml.attacks._labels import LabelStore, Path, bisect, refuse_probabilities
from stealml.attacks._selection import AUTO, FAMILIES, select_model
from stealml.attacks.base import Attack, Querier
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.validation import check_positive_int

__all__ = ["DEFAULT_ALPHA", "RetrainLineSearch", "RetrainUniform", "Retraining"]

DEFAULT_ALPHA = 10  # queries per unknown when neither n_queries nor a budget is given


class Retraining(Attack):
    """What the retraining strategies share (not registered itself).

    Parameters
    ----------
    model : {"auto", "linear", "poly-svm", "rbf-svm", "mlp", "forest"}
        The local model family; "auto" lets extract-and-test choose among linear,
        polynomial- and RBF-kernel SVMs. Hyper-parameters are always chosen by
        extract-and-test.
    n_queries : int, optional
        Queries to spend. By default the ledger's remaining budget, else
        10 × the unknowns (see :meth:`n_unknowns`).
    hidden_units : int
        MLP: hidden units of the local model (and of the unknowns count).
    valid_paths : bool
        Line searches keep categorical features one-hot (points a user could send).
    ignore_probabilities : bool
        Run on an API that reveals probabilities, using its labels only.
    batch_size : int, optional
        Most queries sent in one request.
    random_state : int or Generator, optional
        Seed of the queries, the hold-out split and the local fits.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"labels"})
    classes_only: ClassVar[bool] = True
    fills_budget: ClassVar[bool] = True  # spends whatever budget it is given

    def __init__(self, model: str = "auto", n_queries: int | None = None,
                 hidden_units: int = 20, valid_paths: bool = True,
                 ignore_probabilities: bool = False, batch_size: int | None = None,
                 random_state: RandomState = None) -> None:
        self.model = model
        self.n_queries = n_queries
        self.hidden_units = hidden_units
        self.valid_paths = valid_paths
        self.ignore_probabilities = ignore_probabilities
        self.batch_size = batch_size
        self.random_state = random_state

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        c = n_classes or 2
        if self.model == "mlp":
            outputs = 1 if c == 2 else c
            return self.hidden_units * (n_columns + 1) + outputs * (self.hidden_units + 1)
        return (n_columns + 1) * (1 if c == 2 else c)

    @classmethod
    def supports(cls, model: Any) -> bool:
        return is_classifier(model) and getattr(model, "classes_", None) is not None

    def families(self) -> tuple[str, ...]:
        if self.model == "auto":
            return AUTO
        if self.model not in FAMILIES:
            raise ConfigurationError(f"model must be auto or one of {', '.join(FAMILIES)}, "
                                     f"not {self.model!r}")
        return (self.model,)

    def _plan(self, oracle: Oracle) -> int:
        if self.n_queries is not None:
            return check_positive_int(self.n_queries, "n_queries")
        remaining = oracle.ledger.remaining
        if remaining is not None:
            return remaining
        classes = oracle.classes
        return DEFAULT_ALPHA * self.n_unknowns(oracle.space.n_encoded,
                                               None if classes is None else len(classes))

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        refuse_probabilities(self.name, oracle, self.ignore_probabilities)
        families = self.families()
        m = self._plan(oracle)
        rng = as_generator(self.random_state)
        store = LabelStore(querier)
        info = self._collect(oracle, store, m, rng)
        X, y = store.data()
        if not len(X):
            raise UnsupportedModelError("no answer was bought: the budget allows no query")
        model, report = select_model(X, y, families, rng, self.hidden_units,
                                     widest=self._widest(oracle, m))
        info.update(planned=m, selection=report)
        return model, len(store) >= m, info

    def _widest(self, oracle: Oracle, m: int) -> bool:
        """Whether extract-and-test, on a budget of ``m``, prefers the widest RBF kernel
        within one standard error of the best (never, but in adaptive retraining)."""
        return False

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        """Buy up to ``m`` labelled queries into ``store``; returns extra info."""
        raise NotImplementedError


class RetrainUniform(Retraining):
    """Retraining on uniform queries: m uniform rows of the feature space, labelled.

    See :class:`Retraining` for the parameters.

    References: Tramèr et al., USENIX Security 2016, section 6, strategy (1).

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 2)); y = X[:, 0] > X[:, 1] ** 2
    >>> result = RetrainUniform(n_queries=200, random_state=0).run(
    ...     LocalOracle(SVC().fit(X, y)))
    >>> result.queries, result.complete
    (200, True)
    """

    name: ClassVar[str] = "retrain-uniform"

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        store.ask(oracle.space.sample_encoded(m, rng))
        return {}


class RetrainLineSearch(Retraining):
    """Retraining on line searches: bisect between differently labelled points with the
    oracle, and train on every point asked (most lie near the boundary).

    Parameters
    ----------
    seed_fraction : float
        Share of the queries spent on uniform rows, between which the searches run.
    steps : int
        Bisection steps of each line search.
    **kwargs
        See :class:`Retraining`.

    References: Tramèr et al., USENIX Security 2016, section 6, strategy (2).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stealml.oracles import LocalOracle
    >>> from stealml.policies import ApiPolicy
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 3)); y = X.sum(axis=1) > 0.3
    >>> oracle = LocalOracle(LogisticRegression().fit(X, y), policy=ApiPolicy(output="labels"))
    >>> RetrainLineSearch(n_queries=100, random_state=0).run(oracle).queries
    100
    """

    name: ClassVar[str] = "retrain-line-search"

    def __init__(self, model: str = "auto", n_queries: int | None = None,
                 seed_fraction: float = 0.25, steps: int = 6, hidden_units: int = 20,
                 valid_paths: bool = True, ignore_probabilities: bool = False,
                 batch_size: int | None = None, random_state: RandomState = None) -> None:
        super().__init__(model=model, n_queries=n_queries, hidden_units=hidden_units,
                         valid_paths=valid_paths, ignore_probabilities=ignore_probabilities,
                         batch_size=batch_size, random_state=random_state)
        self.seed_fraction = seed_fraction
        self.steps = steps

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        if not 0 < self.seed_fraction <= 1:
            raise ConfigurationError(f"seed_fraction must be in (0, 1], not "
                                     f"{self.seed_fraction}")
        steps = check_positive_int(self.steps, "steps")
        seeds = oracle.space.sample_encoded(max(2, math.ceil(m * self.seed_fraction)), rng)
        labels = store.ask(seeds[:m])
        seeds = seeds[:len(labels)]
        path = Path(oracle.space, valid=self.valid_paths)
        searches = 0
        while len(store) < m and not store.exhausted:
            left = m - len(store)
            a, b = opposite_pairs(labels, max(1, math.ceil(left / steps)), rng)
            if not len(a):
                store.ask(oracle.space.sample_encoded(left, rng))  # one class: go uniform
                break
            tau = path.thresholds(len(a), rng)
            budgeted = _Capped(store, m)
            bisect(budgeted.ask, path, seeds[a], seeds[b], labels[a], steps, tau)
            searches += len(a)
        return {"line_searches": searches}


class _Capped:
    """Asks through a store, never past ``m`` queries in all."""

    def __init__(self, store: LabelStore, m: int) -> None:
        self.store, self.m = store, m

    def ask(self, X: np.ndarray) -> np.ndarray:
        return self.store.ask(X[:max(self.m - len(self.store), 0)])


def opposite_pairs(labels: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random index pairs (i, j) with different labels (fewer if too few exist)."""
    text = labels.astype(str)
    if len(np.unique(text)) < 2:
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    a = rng.integers(0, len(labels), size=4 * n)
    b = rng.integers(0, len(labels), size=4 * n)
    keep = text[a] != text[b]
    pairs = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:n]]
    return pairs[:, 0], pairs[:, 1]

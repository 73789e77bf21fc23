"""Substitute training from labels: a local neural network trained on the target's answers.

Two ways to choose the queries. ``substitute-jacobian`` starts from a small seed set and
grows it round after round by stepping each point along the sign of the substitute's
gradient for the label the target gave it (Jacobian-based data augmentation): new points
land where the substitute's decision changes fastest, near the target's boundaries.
``substitute-knockoff`` queries a transfer set of natural inputs from another source
(a data set, or rows the user supplies), sampled at random. The substitute is a
scikit-learn ``MLPClassifier`` with ReLU units (PyTorch is not needed), retrained on every
label bought.

The final substitute is an ensemble: ``n_estimators`` networks trained from different
random initialisations on the same answers, their logits averaged. The average of
one-hidden-layer ReLU networks is itself one (their hidden units side by side), so the
stolen model is still a single ``MLPClassifier``. Averaging is what the answers allow:
when they are labels of natural inputs the target has learnt (its training images,
say), networks that fit them all still disagree far from those inputs, and the target is
one draw among them; the ensemble predicts the label most such networks give, which
agrees with the draw more often than a single network does (five 64-32-10 Digits
victims, each answering labels for its 1,347 training images: one network agrees with
the victim on 46% of uniform points and 98.4% of the test images, 8 networks averaged on
57% and 98.8%; ``benchmarks/results/art_comparison.md``).

References: Papernot et al., "Practical Black-Box Attacks against Machine Learning",
AsiaCCS 2017, section 4 (Jacobian-based dataset augmentation); Orekondy, Schiele and Fritz,
"Knockoff Nets: Stealing Functionality of Black-Box Models", CVPR 2019, section 4
(transfer sets, random strategy); Lakshminarayanan, Pritzel and Blundell, "Simple and
Scalable Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017 (ensembles of
independently initialised networks).
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from stealml.attacks._labels import LabelStore, refuse_probabilities
from stealml.attacks._relu_model import average_mlps
from stealml.attacks.base import Attack, Querier
from stealml.exceptions import ConfigurationError, FeatureCountError, UnsupportedModelError
from stealml.oracles.base import Oracle, valid_rows_only
from stealml.random import RandomState, as_generator
from stealml.validation import check_positive_int

__all__ = ["SubstituteJacobian", "SubstituteKnockoff", "input_gradient"]

DEFAULT_QUERIES = 1000


def input_gradient(model: MLPClassifier, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The gradient of each row's logit for label ``y`` (its margin for a logistic
    output) with respect to the input, by backpropagation through the MLP."""
    acts = [np.asarray(X, dtype=float)]
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        z = acts[-1] @ W + b
        acts.append(z if i == len(model.coefs_) - 1 else _act(model.activation, z))
    idx = np.searchsorted(model.classes_, y)
    out = acts[-1]
    G = np.zeros_like(out)
    if out.shape[1] == 1:
        G[:, 0] = np.where(idx == 1, 1.0, -1.0)
    else:
        G[np.arange(len(X)), idx] = 1.0
    for i in range(len(model.coefs_) - 1, -1, -1):
        G = G @ model.coefs_[i].T
        if i > 0:
            G = G * _dact(model.activation, acts[i])
    return G


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def _dact(name: str, h: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (h > 0).astype(float)
    if name == "tanh":
        return 1.0 - h**2
    if name == "logistic":
        return h * (1.0 - h)
    return np.ones_like(h)


class Substitute(Attack):
    """What the substitute-training attacks share (not registered itself).

    Parameters
    ----------
    n_queries : int, optional
        Labels to buy. By default the ledger's remaining budget, else 1,000.
    hidden_layer_sizes : tuple of int
        The substitute's hidden layers (ReLU).
    max_iter : int
        Most training epochs of each fit (Adam).
    n_estimators : int
        Networks trained from different initialisations for the final substitute, their
        logits averaged into one ``MLPClassifier`` (with ``n_estimators`` times the hidden
        units). No query is added: all are trained on the same answers.
    ignore_probabilities : bool
        Run on an API that reveals probabilities, using its labels only.
    batch_size : int, optional
        Most queries sent in one request.
    random_state : int or Generator, optional
        Seed of the queries and of the substitute's training.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"labels"})
    classes_only: ClassVar[bool] = True
    fills_budget: ClassVar[bool] = True

    def __init__(self, n_queries: int | None = None,
                 hidden_layer_sizes: tuple[int, ...] = (64,), max_iter: int = 500,
                 n_estimators: int = 4, ignore_probabilities: bool = False,
                 batch_size: int | None = None, random_state: RandomState = None) -> None:
        self.n_queries = n_queries
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.n_estimators = n_estimators
        self.ignore_probabilities = ignore_probabilities
        self.batch_size = batch_size
        self.random_state = random_state

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        widths = [n_columns, *self.hidden_layer_sizes,
                  1 if (n_classes or 2) <= 2 else int(n_classes or 2)]
        return sum((a + 1) * b for a, b in itertools.pairwise(widths))

    @classmethod
    def supports(cls, model: Any) -> bool:
        return is_classifier(model) and getattr(model, "classes_", None) is not None

    def _plan(self, oracle: Oracle) -> int:
        if self.n_queries is not None:
            return check_positive_int(self.n_queries, "n_queries")
        remaining = oracle.ledger.remaining
        return remaining if remaining is not None else DEFAULT_QUERIES

    def _fit_one(self, X: np.ndarray, y: np.ndarray,
                 rng: np.random.Generator) -> MLPClassifier:
        """One network, from a fresh random initialisation."""
        model = MLPClassifier(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes), activation="relu",
            max_iter=check_positive_int(self.max_iter, "max_iter"),
            random_state=int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)

    def _train(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> MLPClassifier:
        """The final substitute: ``n_estimators`` networks, logits averaged."""
        k = check_positive_int(self.n_estimators, "n_estimators")
        members = [self._fit_one(X, y, rng) for _ in range(k)]
        return members[0] if k == 1 else average_mlps(members)

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        refuse_probabilities(self.name, oracle, self.ignore_probabilities)
        m = self._plan(oracle)
        rng = as_generator(self.random_state)
        store = LabelStore(querier)
        check_positive_int(self.n_estimators, "n_estimators")
        info = self._collect(oracle, store, m, rng)
        X, y = store.data()
        if not len(X):
            raise UnsupportedModelError("no answer was bought: the budget allows no query")
        model = self._train(X, y, rng)
        info.update(planned=m, labels=len(X), classes_seen=len(np.unique(y)),
                    n_estimators=self.n_estimators)
        return model, len(store) >= m and not store.exhausted, info

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        """Buy up to ``m`` labels into ``store``; what to report in ``info``."""
        raise NotImplementedError


def _rows(source: Any, n_columns: int, what: str) -> np.ndarray | None:
    """Rows from a data set name (all its rows) or an array; None stays None."""
    if source is None:
        return None
    if isinstance(source, str):
        from stealml.datasets import load

        source = load(source, random_state=0).X
    X = np.asarray(source, dtype=float)
    if X.ndim != 2 or X.shape[1] != n_columns:
        raise FeatureCountError(f"{what} has {X.shape[-1] if X.ndim else 0} features, "
                                f"but the space has {n_columns}")
    return X


class SubstituteJacobian(Substitute):
    """Substitute training with Jacobian-based data augmentation.

    Each round labels the new points, retrains the substitute, and adds, for every
    point x with label y, x + step * sign(d logit_y / dx) (the step's sign flips every
    ``tau`` rounds; rows asked before are skipped, and at most what the budget still
    allows is added, chosen at random). Against an API that takes raw rows only
    (:func:`~stealml.oracles.valid_rows_only`), each categorical feature of a new point
    takes the category whose one-hot column's gradient is steepest in the step's
    direction, so that every point is a valid row.

    Parameters
    ----------
    seeds : array-like or str, optional
        The initial points (rows of the model space), or a data set name whose rows are
        used; by default ``n_seeds`` uniform points of the space.
    n_seeds : int
        Uniform seed points when ``seeds`` is not given.
    step : float
        The augmentation step (lambda), in model-space units.
    tau : int
        Rounds between flips of the step's sign.
    **kwargs
        See :class:`Substitute`.

    References: Papernot et al., AsiaCCS 2017, section 4.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stealml.oracles import LocalOracle
    >>> from stealml.policies import ApiPolicy
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 3)); y = X.sum(axis=1) > 0.3
    >>> oracle = LocalOracle(LogisticRegression().fit(X, y), policy=ApiPolicy(output="labels"))
    >>> SubstituteJacobian(n_queries=200, random_state=0).run(oracle).queries
    200
    """

    name: ClassVar[str] = "substitute-jacobian"

    def __init__(self, seeds: Any = None, n_seeds: int = 100, step: float = 0.1,
                 tau: int = 3, n_queries: int | None = None,
                 hidden_layer_sizes: tuple[int, ...] = (64,), max_iter: int = 500,
                 n_estimators: int = 4, ignore_probabilities: bool = False,
                 batch_size: int | None = None, random_state: RandomState = None) -> None:
        super().__init__(n_queries=n_queries, hidden_layer_sizes=hidden_layer_sizes,
                         max_iter=max_iter, n_estimators=n_estimators,
                         ignore_probabilities=ignore_probabilities,
                         batch_size=batch_size, random_state=random_state)
        self.seeds = seeds
        self.n_seeds = n_seeds
        self.step = step
        self.tau = tau

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        if not self.step > 0:
            raise ConfigurationError(f"step must be positive, not {self.step}")
        tau = check_positive_int(self.tau, "tau")
        space = oracle.space
        lo, hi = space.encoded_bounds()
        X0 = _rows(self.seeds, space.n_encoded, "seeds")
        if X0 is None:
            X0 = space.sample_encoded(check_positive_int(self.n_seeds, "n_seeds"), rng)
        new = X0[rng.permutation(len(X0))[:m]]
        valid = valid_rows_only(oracle)
        of = space.feature_of_column
        blocks = [np.flatnonzero(of == i) for i in np.unique(of[space.categorical_columns])]
        rounds = 0
        while len(new) and not store.exhausted:
            store.ask(new)
            X, y = store.data()
            left = m - len(store)
            if left <= 0 or len(np.unique(y)) < 2:
                break
            model = self._fit_one(X, y, rng)  # one network steers the augmentation
            sign = 1.0 if (rounds // tau) % 2 == 0 else -1.0
            pick = rng.permutation(len(X))
            grad = input_gradient(model, X[pick], y[pick])
            new = np.clip(X[pick] + sign * self.step * np.sign(grad), lo, hi)
            if valid:  # each categorical feature takes the category whose column's
                # gradient is steepest in the step's direction: a valid row
                for cols in blocks:
                    new[:, cols] = 0.0
                    new[np.arange(len(new)), cols[np.argmax(sign * grad[:, cols], axis=1)]] = 1.0
            new = new[_unseen(new, X)[:left]]  # at most what the budget still allows
            rounds += 1
        return {"rounds": rounds, "seeds_used": int(min(len(X0), m))}


def _unseen(new: np.ndarray, asked: np.ndarray) -> list[int]:
    """Indices of the rows of ``new`` not in ``asked`` (and not repeated), in order."""
    seen = {row.tobytes() for row in asked}
    keep = []
    for i, row in enumerate(new):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


class SubstituteKnockoff(Substitute):
    """Substitute training on a transfer set of natural inputs (Knockoff Nets, random
    strategy): up to ``n_queries`` rows drawn at random from ``transfer``.

    Parameters
    ----------
    transfer : array-like or str, optional
        The transfer set (rows of the model space), or a data set name whose rows are
        used; by default uniform points of the space.
    **kwargs
        See :class:`Substitute`.

    References: Orekondy, Schiele and Fritz, CVPR 2019, section 4.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stealml.oracles import LocalOracle
    >>> from stealml.policies import ApiPolicy
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 3)); y = X.sum(axis=1) > 0.3
    >>> oracle = LocalOracle(LogisticRegression().fit(X, y), policy=ApiPolicy(output="labels"))
    >>> SubstituteKnockoff(transfer=X, n_queries=150, random_state=0).run(oracle).queries
    150
    """

    name: ClassVar[str] = "substitute-knockoff"

    def __init__(self, transfer: Any = None, n_queries: int | None = None,
                 hidden_layer_sizes: tuple[int, ...] = (64,), max_iter: int = 500,
                 n_estimators: int = 4, ignore_probabilities: bool = False,
                 batch_size: int | None = None, random_state: RandomState = None) -> None:
        super().__init__(n_queries=n_queries, hidden_layer_sizes=hidden_layer_sizes,
                         max_iter=max_iter, n_estimators=n_estimators,
                         ignore_probabilities=ignore_probabilities,
                         batch_size=batch_size, random_state=random_state)
        self.transfer = transfer

    def _collect(self, oracle: Oracle, store: LabelStore, m: int,
                 rng: np.random.Generator) -> dict[str, Any]:
        pool = _rows(self.transfer, oracle.space.n_encoded, "transfer")
        if pool is None:
            pool = oracle.space.sample_encoded(m, rng)
        store.ask(pool[rng.permutation(len(pool))[:m]])
        return {"transfer_rows": len(pool)}

"""What the labels-only attacks share: the refusal of richer answers, a store of labelled
queries, paths between two points and bisection along them.

A *path* from ``a`` to ``b`` moves each continuous column linearly; with ``valid=True``
each categorical feature jumps from ``a``'s value to ``b``'s at its own random threshold,
so every point on the path is a row a real user could send (one-hot columns stay 0/1).
Bisection only needs the two ends to be labelled differently: some label change lies
between them, and each query halves the bracket around it.

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 6 (line searches; Lowd and Meek 2005).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stealml.attacks.base import Querier
from stealml.exceptions import ConfigurationError
from stealml.oracles.base import Oracle
from stealml.space import CategoricalFeature, FeatureSpace

__all__ = ["LabelStore", "Path", "bisect", "refuse_probabilities"]

LabelFn = Callable[[np.ndarray], np.ndarray]


def refuse_probabilities(name: str, oracle: Oracle, ignore_probabilities: bool) -> None:
    """Refuse an API these class-label attacks cannot use: one answering regression
    values; one revealing probabilities, unless told to use its labels only."""
    if "values" in oracle.reveals:
        raise ConfigurationError(f"attack {name!r} learns class labels, but the API answers "
                                 "regression values")
    if "probabilities" in oracle.reveals and not ignore_probabilities:
        raise ConfigurationError(
            f"the API reveals probabilities, but attack {name!r} reads labels only, which "
            "tell far less per query (an attack that reads the probabilities, where one "
            "applies, needs far fewer); to use its labels anyway, ask the "
            "API for labels (--output labels, ApiPolicy(output='labels')) or pass "
            "ignore_probabilities=True")


class LabelStore:
    """Every labelled query an attack bought, in order; asks the oracle through a Querier.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from stealml.oracles import LocalOracle
    >>> oracle = LocalOracle(LogisticRegression().fit([[-1.0], [1.0]], [0, 1]))
    >>> store = LabelStore(Querier(oracle))
    >>> store.ask(np.array([[-0.5], [0.5]])).tolist(), len(store)
    ([0, 1], 2)
    """

    def __init__(self, querier: Querier) -> None:
        self.querier = querier
        self._X: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(y) for y in self._y)

    @property
    def exhausted(self) -> bool:
        return self.querier.exhausted

    def ask(self, X: np.ndarray) -> np.ndarray:
        """Labels of the rows of ``X`` the budget allowed (a prefix)."""
        if not len(X) or self.querier.exhausted:
            return np.empty(0, dtype=object)
        asked, answers = self.querier.ask(X)
        if not answers:
            return np.empty(0, dtype=object)
        labels = np.concatenate([a.labels for a in answers])
        self._X.append(asked)
        self._y.append(labels)
        return labels

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """All labelled rows so far."""
        if not self._X:
            return np.empty((0, 0)), np.empty(0, dtype=object)
        return np.vstack(self._X), np.concatenate(self._y)


class Path:
    """Straight paths between pairs of model-space points, optionally kept valid.

    Parameters
    ----------
    space : FeatureSpace
        Tells which columns are one-hot blocks of a categorical feature.
    valid : bool
        Snap each categorical block to one end (at a random threshold per pair and
        feature), so that every point of the path is a valid encoded row.
    """

    def __init__(self, space: FeatureSpace, valid: bool = True) -> None:
        self.blocks = [space.columns(i) for i, f in enumerate(space.features)
                       if isinstance(f, CategoricalFeature)] if valid else []

    def thresholds(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Where each categorical feature of each of ``n`` paths switches ends."""
        return rng.uniform(0.0, 1.0, size=(n, len(self.blocks)))

    def at(self, A: np.ndarray, B: np.ndarray, t: np.ndarray,
           tau: np.ndarray) -> np.ndarray:
        """The points at positions ``t`` (one per pair) of the paths ``A[i] -> B[i]``."""
        X = A + t[:, None] * (B - A)
        for k, cols in enumerate(self.blocks):
            far = (t >= tau[:, k])[:, None]
            X[:, cols] = np.where(far, B[:, cols], A[:, cols])
        return X


def bisect(label_of: LabelFn, path: Path, A: np.ndarray, B: np.ndarray,
           label_a: np.ndarray, steps: int, tau: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Bisect the paths ``A[i] -> B[i]`` (ends labelled differently) ``steps`` times.

    ``label_of`` labels a batch of points; it may label only a prefix (a budget ran out):
    the other paths stop there. Returns the brackets ``(lo, hi)``: positions on each path
    with ``label_a`` at ``lo`` and another label at ``hi``.
    """
    lo = np.zeros(len(A))
    hi = np.ones(len(A))
    active = np.arange(len(A))
    for _ in range(steps):
        if not len(active):
            break
        mid = (lo[active] + hi[active]) / 2
        labels = label_of(path.at(A[active], B[active], mid, tau[active]))
        done = active[:len(labels)]
        same = labels.astype(str) == label_a[done].astype(str)
        lo[done[same]] = mid[:len(labels)][same]
        hi[done[~same]] = mid[:len(labels)][~same]
        if len(labels) < len(active):
            break
    return lo, hi

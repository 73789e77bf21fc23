"""The feature map a feature-discovery attack finds: bins, one-hot blocks, missing columns.

:class:`DiscoveredExtraction` is a scikit-learn transformer over the model space of an
API's published :class:`~stealml.space.FeatureSpace` (one-hot categories, numerics scaled
to [-1, 1]). Each feature becomes one block: a categorical feature's one-hot columns as
they are; a quantile-binned numeric feature one-hot bin columns (``edges`` in the scaled
unit, a value v in bin i when ``edges[i-1] <= v < edges[i]``, as the service bins); a
numeric feature the model takes linearly its scaled value. With ``missing`` every feature
also gets a 0/1 column that says it was omitted (its other columns are then 0), which
covers both an omitted feature set to zeros (Amazon) and missing-value predictors
(BigML). A stolen model is ``Pipeline([("extraction", DiscoveredExtraction(...)),
("model", LogisticRegression(...))])``.

References: Tramèr et al., USENIX Security 2016, section 5.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["DiscoveredExtraction"]

KINDS = ("onehot", "bins", "linear")


class DiscoveredExtraction(TransformerMixin, BaseEstimator):
    """Model-space rows -> the columns a served model was trained on.

    Parameters
    ----------
    kinds : sequence of {"onehot", "bins", "linear"}
        One per feature of the space.
    widths : sequence of int
        Model-space columns of each feature (1 for a numeric one).
    edges : sequence of sequence of float
        Inner bin boundaries (scaled unit) of each "bins" feature; empty for the others.
    missing : bool
        Append one missing-indicator column per feature.

    Examples
    --------
    >>> ex = DiscoveredExtraction(["bins", "onehot"], [1, 2], [[0.0], []])
    >>> ex.transform(np.array([[0.5, 1.0, 0.0]])).tolist()
    [[0.0, 1.0, 1.0, 0.0]]
    """

    def __init__(self, kinds: Sequence[str], widths: Sequence[int],
                 edges: Sequence[Sequence[float]], missing: bool = False) -> None:
        self.kinds = kinds
        self.widths = widths
        self.edges = edges
        self.missing = missing

    @property
    def n_features_in_(self) -> int:
        return int(sum(self.widths))

    @property
    def n_columns(self) -> int:
        """Columns of the output."""
        n = sum(len(e) + 1 if k == "bins" else w
                for k, w, e in zip(self.kinds, self.widths, self.edges, strict=True))
        return n + (len(self.kinds) if self.missing else 0)

    def fit(self, X: Any = None, y: Any = None) -> DiscoveredExtraction:
        """Nothing to learn: the map was discovered by querying."""
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Model-space rows (NaN in a missing feature's columns) -> model input."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the extraction takes "
                             f"{self.n_features_in_}")
        blocks, gone = [], []
        start = 0
        for kind, width, edges in zip(self.kinds, self.widths, self.edges, strict=True):
            cols = X[:, start:start + width]
            start += width
            miss = np.isnan(cols).all(axis=1)
            gone.append(miss)
            if kind == "bins":
                block = np.zeros((len(X), len(edges) + 1))
                have = np.flatnonzero(~miss)
                block[have, np.digitize(cols[have, 0], np.asarray(edges, dtype=float))] = 1.0
            elif kind in ("onehot", "linear"):
                block = np.nan_to_num(cols, nan=0.0)
            else:
                raise ValueError(f"unknown block kind {kind!r}; one of {KINDS}")
            blocks.append(block)
        if self.missing:
            blocks.append(np.column_stack(gone).astype(float))
        return np.hstack(blocks) if blocks else np.empty((len(X), 0))

    def describe(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Each feature's discovered handling, JSON-able."""
        names = list(names) if names is not None else [f"x{i}" for i in range(len(self.kinds))]
        return [{"feature": n, "kind": k, **({"edges": [float(v) for v in e]}
                                            if k == "bins" else {})}
                for n, k, e in zip(names, self.kinds, self.edges, strict=True)]

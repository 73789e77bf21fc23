"""Feature spaces inferred from a raw table."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from stealml.space import CategoricalFeature, ContinuousFeature, Feature, FeatureSpace


def _continuous(name: str, column: np.ndarray) -> ContinuousFeature:
    x = np.asarray(column, dtype=float)
    integral = bool(np.all(x == np.round(x)))
    return ContinuousFeature(name, float(x.min()), float(x.max()), 1.0 if integral else None)


def infer_space(names: Sequence[str], raw: np.ndarray,
                categorical: Collection[str]) -> FeatureSpace:
    """The feature space of a raw table.

    Parameters
    ----------
    names : sequence of str
        One name per column of ``raw``.
    raw : ndarray of shape (n_rows, n_features)
        Floats in the continuous columns, strings in the categorical ones.
    categorical : collection of str
        Names of the categorical columns.

    Returns
    -------
    FeatureSpace
        Continuous features span the observed ``[min, max]`` (granularity 1 where every
        value is an integer); categorical features list their observed values, sorted.
    """
    features: list[Feature] = []
    for j, name in enumerate(names):
        if name in categorical:
            values = tuple(sorted({str(v) for v in raw[:, j]}))
            features.append(CategoricalFeature(name, values))
        else:
            features.append(_continuous(name, raw[:, j]))
    return FeatureSpace(features)

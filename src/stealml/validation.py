"""The one place where query batches and options are checked, with one wording for errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from stealml.exceptions import ConfigurationError, FeatureCountError, NonFiniteInputError


def check_queries(X: Any, n_columns: int, allow_missing: bool = False) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array of ``n_columns`` columns, or raise.

    NaN marks a missing value and is accepted only with ``allow_missing``; infinities
    never are.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NonFiniteInputError(f"X must be numeric: {exc}") from exc
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise FeatureCountError(f"X must be 2-D, but has {arr.ndim} dimensions")
    if arr.shape[1] != n_columns:
        raise FeatureCountError(
            f"X has {arr.shape[1]} features, but the space has {n_columns}")
    if np.isinf(arr).any():
        raise NonFiniteInputError("X holds an infinity")
    if not allow_missing and np.isnan(arr).any():
        raise NonFiniteInputError(
            "X holds NaN (a missing value), but this API does not accept incomplete queries")
    return arr


def check_positive_int(value: Any, name: str) -> int:
    """An integer >= 1, or a ConfigurationError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)

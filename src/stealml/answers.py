"""Answers: what an oracle returns for a batch of queries.

Each answered row is also a plain JSON-able record (``{"label": ..., "probabilities":
[...], "value": ..., "id": ..., "raw": ...}``) so that the ledger can store it and replay
it later exactly as it was paid for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Answers", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays -> plain Python, for JSON."""
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


@dataclass
class Answers:
    """A batch of answers, one row per query.

    Attributes
    ----------
    labels : ndarray (n,)
        The predicted class (classifiers) or the predicted value (regressors).
    classes : ndarray or None
        The class labels, in the order of the probability columns.
    probabilities : ndarray (n, c) or None
        Class probabilities when the API reveals them; NaN where it hides one (top-k).
    values : ndarray (n,) or None
        Regression values, where the target is a regressor.
    ids : ndarray (n,) of object, or None
        A leaf or node identifier, where the API leaks one.
    raw : list
        Each answer as the API gave it.
    """

    labels: np.ndarray
    classes: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None
    ids: np.ndarray | None = None
    raw: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]],
                     classes: np.ndarray | None) -> Answers:
        labels = np.array([r.get("label") for r in records])
        probs = values = ids = None
        if records and records[0].get("probabilities") is not None:
            width = len(records[0]["probabilities"])
            probs = np.array([[np.nan if p is None else p for p in
                               (r.get("probabilities") or [None] * width)]
                              for r in records], dtype=float)  # None: labels only from here
        if records and records[0].get("value") is not None:
            values = np.array([r["value"] for r in records], dtype=float)
        if records and records[0].get("id") is not None:
            ids = np.array([r["id"] for r in records], dtype=object)
        if not records:
            labels = np.array([])
        return cls(labels=labels, classes=classes, probabilities=probs, values=values,
                   ids=ids, raw=[r.get("raw") for r in records])

"""Training target models on the offline data sets (``stealml train``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stealml.datasets import load as load_dataset
from stealml.modelio import save_model
from stealml.targets import make_target

__all__ = ["train_target"]


def train_target(data: str, kind: str, out: str, seed: int = 0,
                 max_leaves: int | None = None, max_depth: int | None = None,
                 epsilon: float | None = None) -> dict[str, Any]:
    """Fit a ``kind`` model on the 70% training split of ``data`` and save it to ``out``.

    Returns a report: features, test score (accuracy, or R^2 for regression), and the
    privacy budget of a differentially private kind.
    """
    ds = load_dataset(data, random_state=seed)
    n_classes = None if ds.task == "regression" else len(np.unique(ds.y))
    model = make_target(kind, ds.task, n_classes, seed, max_leaves, max_depth, epsilon)
    model.fit(ds.X_train, ds.y_train)
    score = float(model.score(ds.X_test, ds.y_test))
    facts: dict[str, Any] = {"data": data, "kind": kind, "seed": seed}
    if hasattr(model, "epsilon"):
        facts["epsilon"] = float(model.epsilon)
    save_model(out, model, ds.space, facts)
    return {**facts, "out": out, "features": int(ds.X.shape[1]),
            "metric": "R^2" if ds.task == "regression" else "accuracy", "score": score}

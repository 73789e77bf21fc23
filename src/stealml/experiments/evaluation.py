"""Measuring a stolen model file against its target file (``stealml evaluate``)."""

from __future__ import annotations

from typing import Any

from sklearn.base import is_regressor

from stealml.datasets import load as load_dataset
from stealml.exceptions import FeatureCountError
from stealml.experiments.runner import target_space
from stealml.metrics import fidelity
from stealml.modelio import load_model

__all__ = ["evaluate_files"]


def evaluate_files(target: str, stolen: str, space: str | None = None,
                   data: str | None = None, seed: int = 0,
                   trusted: bool = False) -> dict[str, Any]:
    """Fidelity of the model in ``stolen`` to the one in ``target``."""
    t = load_model(target, trusted=trusted)
    s = load_model(stolen, trusted=trusted)
    sp = target_space(t, space)
    width = getattr(s.model, "n_features_in_", None)
    if width is not None and width != sp.n_encoded:
        raise FeatureCountError(f"the stolen model takes {width} features, but the target's "
                                f"space has {sp.n_encoded}: is it a copy of another model?")
    X_test = None
    if data is not None:
        X_test = load_dataset(data, random_state=seed).X_test
        if X_test.shape[1] != sp.n_encoded:
            raise FeatureCountError(f"data set {data} has {X_test.shape[1]} features, but the "
                                    f"space has {sp.n_encoded}")
    fid = fidelity(t.model, s.model, sp, X_test, random_state=seed,
                   regression=is_regressor(t.model))
    return {"target": target, "stolen": stolen, "fidelity": fid}

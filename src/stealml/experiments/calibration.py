"""Calibrating a target's PRADA detector on its owner's natural rows (``stealml
calibrate-prada``), for ``stealml serve`` and ``stealml extract`` to load.

References: Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model
Stealing Attacks", IEEE EuroS&P 2019, section IV (delta set from benign traffic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import is_regressor

from stealml.datasets import load as load_dataset
from stealml.defences import Prada, calibrate_prada
from stealml.defences.prada import LABEL_LEVEL
from stealml.exceptions import ConfigurationError, FeatureCountError
from stealml.modelio import load_model

__all__ = ["calibrate_target", "reference_rows"]


def reference_rows(data: str | None, reference: str | None, n_columns: int,
                   seed: int = 0) -> tuple[np.ndarray, str]:
    """The owner's rows (model space): a data set's training split, or a ``.npy`` file;
    with a description of where they came from."""
    if (data is None) == (reference is None):
        raise ConfigurationError("give the owner's rows: --data NAME (its training split) "
                                 "or --reference ROWS.npy")
    if data is not None:
        rows = load_dataset(data, random_state=seed).X_train
        source = f"{data} training split (seed {seed})"
    else:
        try:
            rows = np.load(str(reference), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {reference}: {exc}") from exc
        source = str(reference)
    if rows.ndim != 2 or rows.shape[1] != n_columns:
        raise FeatureCountError(f"the owner's rows have shape {rows.shape}, but the model "
                                f"space has {n_columns} columns")
    return np.asarray(rows, dtype=float), source


def calibrate_target(target: str, data: str | None = None, reference: str | None = None,
                     out: str | Path | None = None, min_samples: int = 10, orders: int = 50,
                     seed: int = 0, trusted: bool = False, label_test: bool = True,
                     label_level: float = LABEL_LEVEL,
                     scale_test: bool = True,
                     spread_test: bool = True,
                     likelihood_test: bool = True,
                     grid_test: bool = True) -> tuple[Prada, dict[str, Any]]:
    """Per-n PRADA thresholds for the model file ``target``, calibrated on its owner's rows
    grouped by the model's labels (one group for a regressor; :attr:`Prada.by_class`)
    (:func:`~stealml.defences.calibrate_prada`, with its
    label test at ``label_level`` unless ``label_test`` is False, its scale test unless
    ``scale_test`` is False, its spread test unless ``spread_test`` is False, its
    likelihood test unless ``likelihood_test`` is False and its grid test unless
    ``grid_test`` is False); written
    to ``out`` (JSON) when given. Returns the detector and a summary of it."""
    from stealml.experiments.runner import target_space

    loaded = load_model(target, trusted=trusted)
    space = target_space(loaded, None)
    rows, source = reference_rows(data, reference, space.n_encoded, seed)
    if not (isinstance(orders, int) and orders >= 1):
        raise ConfigurationError(f"orders must be a whole number >= 1, not {orders}")
    labels = None if is_regressor(loaded.model) else np.asarray(loaded.model.predict(rows))
    prada = calibrate_prada(rows, labels, min_samples=min_samples, orders=orders,
                            short_orders=20 * orders, random_state=seed,
                            label_test=label_test, label_level=label_level,
                            scale_test=scale_test, spread_test=spread_test,
                            likelihood_test=likelihood_test, grid_test=grid_test)
    calibration = {"target": str(target), "rows": len(rows), "source": source,
                   "orders": orders, "short_orders": 20 * orders, "seed": seed}
    if out is not None:
        prada.save(out, **calibration)
    last = prada.min_samples + len(prada.thresholds)
    summary = {**calibration, "min_samples": prada.min_samples,
               "thresholds_to": last - 1, "delta": prada.delta,
               "windows": list(prada.windows), "repeats": list(prada.repeats),
               "label_shares": dict(prada.label_shares),
               "label_level": label_level if prada.label_high else None,
               "mean_distance_at": {n: prada.scale_bound(n) for n in
                                    sorted({prada.min_samples, 20, 50, 100, 200})
                                    if prada.scale_bound(n) < float("inf")},
               "pair_distance_at": {n: prada.spread_bound(n) for n in
                                    sorted({prada.min_samples, 20, 50, 100, 200})
                                    if prada.spread_bound(n) < float("inf")},
               "grid_features": len(prada.grid), "grid_flag": prada.grid_flag,
               "likelihood_at": {n: prada.likelihood_bound(n) for n in
                                 sorted({prada.min_samples, 20, 50, 100, 200})
                                 if prada.likelihood_bound(n) < float("inf")},
               "threshold_at": {n: prada.threshold(n) for n in
                                sorted({prada.min_samples, 20, 50, 100, 200, last - 1})
                                if prada.min_samples <= n < last}}
    return prada, summary

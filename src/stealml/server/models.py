"""A served model: a model file, its published features, its extraction and its policy.

:meth:`ServedModel.predict` takes raw rows (feature names to values, as real services take
them), applies the service's feature extraction and its incomplete-input semantics, runs
the model and applies the policy (labels only, top-k, rounding, significant digits).

Incomplete inputs follow the model's ``incomplete`` setting: ``reject`` refuses them,
``zeros`` sets every encoded column of an omitted feature to 0 (Amazon), ``native`` hands
them to the model as the service's model class would take them: a decision tree stops at
the first node that splits on a missing feature and answers with that node's label and
confidence (BigML; :class:`~stealml.models.tree_service.TreeService`); a model trained
with missing-value indicator columns reads those (BigML's logistic regression); any other
model refuses them. Trees answer with a confidence and the fields used under every
setting, as BigML's did.

References: Tramèr et al., USENIX Security 2016, sections 2.2, 4.2 and 5.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import is_regressor

from stealml.answers import to_jsonable
from stealml.defences import Monitor, OutOfDistribution, Prada
from stealml.defences.prada import prada_from_file
from stealml.exceptions import ConfigurationError, InvalidInputError, ModelFileError
from stealml.modelio import load_model
from stealml.models.tree_service import TreeService, serves_as_tree
from stealml.policies import ApiPolicy
from stealml.server.extraction import FeatureExtraction
from stealml.server.settings import ModelSettings, MonitorSettings
from stealml.space import FeatureSpace

__all__ = ["Outcome", "ServedModel"]


@dataclass
class Outcome:
    """The policy-filtered answers to a batch: one entry per row."""

    labels: list[Any]
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None
    extras: list[dict[str, Any]] | None = None
    _records: tuple[list[Any], list[dict[str, Any]]] | None = field(default=None,
                                                                     repr=False)

    def records(self, classes: list[Any]) -> list[dict[str, Any]]:
        """Each answer as the service's JSON: label, probabilities by class, value, and
        a tree's confidence and fields (made once: the response and the log share it)."""
        if self._records is not None and self._records[0] == classes:
            return self._records[1]
        names = [str(c) for c in classes]
        probs = None if self.probabilities is None else self.probabilities.tolist()
        values = None if self.values is None else self.values.tolist()
        out = []
        for i, label in enumerate(self.labels):
            rec: dict[str, Any] = {"label": label}
            if probs is not None:
                rec["probabilities"] = {n: p for n, p in zip(names, probs[i], strict=True)
                                        if not math.isnan(p)}
            if values is not None:
                rec["value"] = values[i]
            if self.extras is not None:
                rec.update(self.extras[i])
            out.append(rec)
        self._records = (list(classes), out)
        return out


class ServedModel:
    """One model as the service hosts it.

    Parameters
    ----------
    settings : ModelSettings
        Where the model file is and the policy of its API.

    Raises
    ------
    ModelFileError
        The file cannot be loaded (skops files holding only scikit-learn and stealml types,
        and ONNX, load; a pickle never does) or carries no feature space.
    """

    def __init__(self, settings: ModelSettings) -> None:
        loaded = load_model(settings.path)  # never trusted: no pickle, no foreign type
        self.settings = settings
        self.name = settings.name
        self.model = loaded.model
        self.digest = loaded.digest
        self.policy: ApiPolicy = settings.policy()
        n_in = getattr(self.model, "n_features_in_", None)
        if settings.space is not None:
            self.space = FeatureSpace.load(settings.space)
        elif loaded.space is not None:
            self.space = loaded.space
        elif n_in is not None:
            self.space = FeatureSpace.continuous(int(n_in))
        else:
            raise ModelFileError(f"{settings.path} carries no feature space and does not "
                                 "say how many features it takes")
        if settings.extraction is not None:
            self.extraction = FeatureExtraction.load(self.space, settings.extraction)
        else:
            self.extraction = FeatureExtraction.from_dict(
                self.space, loaded.meta.get("extraction") or {})
        if n_in is not None and int(n_in) != self.extraction.n_columns:
            raise ModelFileError(f"{settings.path}: the model takes {n_in} features, but its "
                                 f"feature extraction gives {self.extraction.n_columns}")
        self.tree: TreeService | None = None
        if isinstance(self.model, TreeService) or serves_as_tree(self.model):
            tree = getattr(self.model, "tree", self.model)  # trees answer as BigML's did
            self.tree = TreeService(tree, self.space if self.extraction.is_identity else None)
        self.is_regressor = is_regressor(self.tree.tree if self.tree else self.model)
        self.has_proba = not self.is_regressor and hasattr(self.model, "predict_proba")
        raw_classes = getattr(self.model, "classes_", None)
        self.classes: list[Any] = [] if raw_classes is None else to_jsonable(
            np.asarray(raw_classes))
        self.policy.check_model(None if self.is_regressor else len(self.classes),
                                self.has_proba or self.tree is not None)
        self.monitor = None if settings.monitor is None else build_monitor(
            settings.monitor, self.space.n_encoded,
            None if self.is_regressor else self._labels_of_encoded)

    @property
    def output(self) -> str:
        """What answers reveal: ``value`` (regressors), else the policy's output."""
        if self.is_regressor:
            return "value"
        return self.policy.output if self.has_proba else "labels"

    def metadata(self) -> dict[str, Any]:
        """What the service publishes about the model (never its bins or parameters)."""
        p = self.policy
        return {"name": self.name, "task": "regression" if self.is_regressor else
                "classification", "features": self.space.to_dict()["features"],
                "classes": self.classes, "output": self.output, "top_k": p.top_k,
                "rounding": p.rounding, "significant_digits": p.significant_digits,
                "incomplete": p.incomplete, "price": p.price,
                "confidence": self.tree is not None and p.reveals_probabilities,
                "version": hashlib.sha256(self.digest.encode()).hexdigest()[:12]}

    def _labels_of_encoded(self, Z: np.ndarray) -> list[Any]:
        """The labels the model gives model-space rows (as the monitor sees queries)."""
        return self.predict(self.space.decode(Z)).labels

    def model_input(self, rows: Any) -> np.ndarray:
        """Raw rows -> the model's input columns, per the incomplete-input semantics."""
        Z = self.extraction.transform(rows, allow_missing=self.policy.incomplete != "reject")
        if np.isinf(Z).any():
            raise InvalidInputError(f"model {self.name!r}: an input value is too large "
                                    "(its scaled value overflows)")
        if self.policy.incomplete == "zeros":
            Z = np.nan_to_num(Z, nan=0.0)
        return Z

    def encoded(self, inputs: list[Any]) -> np.ndarray:
        """Inputs as the monitor sees them: model-space rows of the published features
        (raw rows by name are encoded; V2 tensors' rows already are)."""
        if inputs and isinstance(inputs[0], dict):
            return self.space.encode(self.space.as_raw(inputs, allow_missing=True))
        return np.asarray(inputs, dtype=float).reshape(len(inputs), -1)

    def predict(self, rows: Any, policy: ApiPolicy | None = None) -> Outcome:
        """Answer raw rows (a list of dicts by feature name, or rows in feature order)."""
        return self.predict_columns(self.model_input(rows), policy)

    def predict_columns(self, Z: np.ndarray, policy: ApiPolicy | None = None) -> Outcome:
        """Answer rows already in the model's input columns (NaN where missing), under
        ``policy`` (the model's own by default; a flagged client's otherwise)."""
        policy = self.policy if policy is None else policy
        if self.tree is not None:
            return _tree_outcome(self.tree.answer_records(Z, policy), self.is_regressor)
        labels, proba = self._run(Z, policy)
        out = Outcome(labels=[to_jsonable(v) for v in np.asarray(labels)])
        if self.is_regressor:
            out.values = policy.round(np.asarray(labels, dtype=float))
            out.labels = [float(v) for v in out.values]
        elif proba is not None:
            labels, out.probabilities = policy.apply(
                np.asarray(labels), proba, Z, np.asarray(self.classes, dtype=object))
            out.labels = [to_jsonable(v) for v in labels]
        return out

    def _run(self, Z: np.ndarray, policy: ApiPolicy) -> tuple[np.ndarray, np.ndarray | None]:
        if np.isnan(Z).any():
            raise InvalidInputError(f"model {self.name!r} cannot answer incomplete inputs; "
                                    "give every feature")
        labels = np.asarray(self.model.predict(Z))
        proba = (np.asarray(self.model.predict_proba(Z), dtype=float)
                 if self.has_proba and (policy.reveals_probabilities or policy.perturbs)
                 else None)
        return labels, proba


def build_monitor(settings: MonitorSettings, n_columns: int,
                  labels_of: Callable[[np.ndarray], Any] | None) -> Monitor:
    """The :class:`~stealml.defences.Monitor` a model's settings describe; its reference
    data (``ood``, a PRADA calibration) is loaded now, so a bad file fails at start-up.
    ``labels_of`` gives the model's labels of model-space rows (to calibrate PRADA on);
    None for a model without classes (a regressor: PRADA keeps one group of queries)."""
    detectors: list[Any] = []
    for name in settings.detectors:
        if name == "prada":
            if settings.prada_calibration is not None:
                detectors.append(prada_from_file(settings.prada_calibration, n_columns,
                                                 labels_of))
            else:
                detectors.append(Prada(delta=settings.prada_delta,
                                       min_samples=settings.prada_min_samples,
                                       by_class=labels_of is not None))
            continue
        assert settings.ood_reference is not None  # checked by MonitorSettings
        try:
            reference = np.load(settings.ood_reference, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the ood reference "
                                     f"{settings.ood_reference}: {exc}") from exc
        if reference.ndim != 2 or reference.shape[1] != n_columns:
            raise ConfigurationError(f"the ood reference {settings.ood_reference} has shape "
                                     f"{reference.shape}, but the model space has "
                                     f"{n_columns} columns")
        detectors.append(OutOfDistribution(reference, quantile=settings.ood_quantile,
                                           alpha=settings.ood_alpha))
    return Monitor(detectors, response=settings.response, noise=settings.noise)



def _tree_outcome(records: list[dict[str, Any]], regressor: bool) -> Outcome:
    """A TreeService's records as an Outcome: confidence and fields ride along."""
    out = Outcome(labels=[r["label"] for r in records])
    if records and records[0].get("probabilities") is not None:
        out.probabilities = np.array([[np.nan if p is None else p for p in r["probabilities"]]
                                      for r in records], dtype=float)
    if regressor:
        out.values = np.array([r["label"] for r in records], dtype=float)
    out.extras = [{k: r["raw"][k] for k in ("confidence", "fields") if k in r["raw"]}
                  for r in records]
    return out

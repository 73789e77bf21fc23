"""A served model: a model file, its published features, its extraction and its policy.

:meth:`ServedModel.predict` takes raw rows (feature names to values, as real services take
them), applies the service's feature extraction and its incomplete-input semantics, runs
the model and applies the policy (labels only, top-k, rounding, significant digits).

Incomplete inputs follow the model's ``incomplete`` setting: ``reject`` refuses them,
``zeros`` sets every encoded column of an omitted feature to 0 (Amazon), ``native`` hands
them to the model as the service's model class would take them: a decision tree stops at
the first node that splits on a missing feature and answers with that node's class
distribution (BigML); a model trained with missing-value indicator columns reads those
(BigML's logistic regression); any other model refuses them.

References: Tramèr et al., USENIX Security 2016, sections 2.2, 4.2 and 5.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import is_regressor
from sklearn.tree import BaseDecisionTree

from stealml.answers import to_jsonable
from stealml.exceptions import InvalidInputError, ModelFileError
from stealml.modelio import load_model
from stealml.models.onnx import OnnxModel
from stealml.policies import ApiPolicy
from stealml.server.extraction import FeatureExtraction
from stealml.server.settings import ModelSettings
from stealml.space import FeatureSpace

__all__ = ["Outcome", "ServedModel"]


@dataclass
class Outcome:
    """The policy-filtered answers to a batch: one entry per row."""

    labels: list[Any]
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None
    ids: list[int] | None = None

    def records(self, classes: list[Any]) -> list[dict[str, Any]]:
        """Each answer as the service's JSON: label, probabilities by class, value, id."""
        out = []
        for i, label in enumerate(self.labels):
            rec: dict[str, Any] = {"label": label}
            if self.probabilities is not None:
                rec["probabilities"] = {str(c): float(p) for c, p in
                                        zip(classes, self.probabilities[i], strict=True)
                                        if not np.isnan(p)}
            if self.values is not None:
                rec["value"] = float(self.values[i])
            if self.ids is not None:
                rec["id"] = self.ids[i]
            out.append(rec)
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
        self.is_regressor = (not self.model.is_classifier if isinstance(self.model, OnnxModel)
                             else is_regressor(self.model))
        self.has_proba = not self.is_regressor and hasattr(self.model, "predict_proba")
        raw_classes = getattr(self.model, "classes_", None)
        self.classes: list[Any] = [] if raw_classes is None else to_jsonable(
            np.asarray(raw_classes))

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
                "reveals_ids": self.settings.reveal_ids,
                "version": hashlib.sha256(self.digest.encode()).hexdigest()[:12]}

    def model_input(self, rows: Any) -> np.ndarray:
        """Raw rows -> the model's input columns, per the incomplete-input semantics."""
        raw = self.space.as_raw(rows, allow_missing=self.policy.incomplete != "reject")
        Z = self.extraction.transform(raw)
        if self.policy.incomplete == "zeros":
            Z = np.nan_to_num(Z, nan=0.0)
        return Z

    def predict(self, rows: Any) -> Outcome:
        """Answer raw rows (a list of dicts by feature name, or rows in feature order)."""
        return self.predict_columns(self.model_input(rows))

    def predict_columns(self, Z: np.ndarray) -> Outcome:
        """Answer rows already in the model's input columns (NaN where missing)."""
        ids: list[int] | None = None
        if isinstance(self.model, BaseDecisionTree):
            nodes = _walk(self.model, Z)
            dist = self.model.tree_.value[nodes][:, 0, :]
            ids = nodes.tolist()
            if self.is_regressor:
                labels, proba = dist[:, 0], None
            else:
                proba = dist / dist.sum(axis=1, keepdims=True)
                labels = np.asarray(self.model.classes_)[proba.argmax(axis=1)]
        else:
            labels, proba = self._run(Z)
        out = Outcome(labels=[to_jsonable(v) for v in np.asarray(labels)])
        if self.is_regressor:
            out.values = self.policy.round(np.asarray(labels, dtype=float))
            out.labels = [float(v) for v in out.values]
        elif proba is not None:
            out.probabilities = self.policy.reveal(proba)
        if self.settings.reveal_ids:
            out.ids = ids
        return out

    def _run(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if np.isnan(Z).any():
            raise InvalidInputError(f"model {self.name!r} cannot answer incomplete inputs; "
                                    "give every feature")
        labels = np.asarray(self.model.predict(Z))
        proba = (np.asarray(self.model.predict_proba(Z), dtype=float)
                 if self.has_proba and self.policy.reveals_probabilities else None)
        return labels, proba


def _walk(tree: BaseDecisionTree, Z: np.ndarray) -> np.ndarray:
    """Node each row reaches, stopping at a split on a missing feature (BigML)."""
    t = tree.tree_
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, still ordered
        X = np.asarray(Z, dtype=np.float32)  # scikit-learn compares in float32
    nodes = np.zeros(len(X), dtype=np.intp)
    active = np.ones(len(X), dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        node = nodes[idx]
        leaf = t.children_left[node] == -1
        v = X[idx, np.where(leaf, 0, t.feature[node])]
        stop = leaf | np.isnan(v)
        go = ~stop
        left = v[go] <= t.threshold[node[go]]
        nodes[idx[go]] = np.where(left, t.children_left[node[go]], t.children_right[node[go]])
        active[idx[stop]] = False
    return nodes


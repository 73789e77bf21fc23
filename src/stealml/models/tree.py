"""Extracted decision trees: a list of leaves, each a box of predicates over raw features.

A leaf holds, per constrained feature, an interval ``lo < x <= hi`` (raw units; ``None``
for an open end) or a set of categories, and the output the API gave for it: label and
confidence, the class probabilities where the API showed them, or a regression value.
``complete`` is False for a leaf whose predicates an attack could not finish (budget).

Rows are predicted in the model space (``FeatureSpace.encode``), like the target: each row
goes to the first leaf whose predicates it meets, or, where no leaf covers it (a partial
extraction), to the leaf whose predicates it violates least.

References: Tramèr et al., USENIX Security 2016, section 4.2 and appendix A (tree model).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if

from stealml.space import CategoricalFeature, FeatureSpace

__all__ = ["ExtractedTreeClassifier", "ExtractedTreeRegressor"]

Leaf = dict[str, Any]


def _raw_columns(space: FeatureSpace, X: np.ndarray) -> list[np.ndarray]:
    """Per raw feature: the raw value (continuous) or the category index (categorical)."""
    out = []
    for j, f in enumerate(space.features):
        block = X[:, space.columns(j)]
        if isinstance(f, CategoricalFeature):
            out.append(np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1))
        else:
            out.append(f.min + (block[:, 0] + 1.0) * (f.max - f.min) / 2.0)
    return out


def _violations(space: FeatureSpace, leaf: Leaf, cols: list[np.ndarray]) -> np.ndarray:
    bad = np.zeros(len(cols[0]) if cols else 0, dtype=np.int32)
    for name, pred in leaf["predicates"].items():
        j = space.names.index(name)
        f = space.features[j]
        if isinstance(f, CategoricalFeature):
            codes = [f.values.index(v) for v in pred["in"]]
            bad += ~np.isin(cols[j], codes)
        else:
            lo, hi = pred.get("min"), pred.get("max")
            if lo is not None:
                bad += cols[j] <= lo
            if hi is not None:
                bad += cols[j] > hi
    return bad


def _predicate_text(name: str, pred: dict[str, Any]) -> str:
    if "in" in pred:
        return f"{name} in {{{', '.join(pred['in'])}}}"
    lo, hi = pred.get("min"), pred.get("max")
    if lo is not None and hi is not None:
        return f"{lo:g} < {name} <= {hi:g}"
    return f"{name} > {lo:g}" if lo is not None else f"{name} <= {hi:g}"


class _ExtractedTree(BaseEstimator):
    """What the classifier and regressor share: leaves, routing, export."""

    def __init__(self, space: str = '{"features": []}') -> None:
        self.space = space

    def _space(self) -> FeatureSpace:
        return FeatureSpace.from_json(self.space)

    def leaf_index(self, X: Any) -> np.ndarray:
        """Index of the leaf each model-space row falls in."""
        space = self._space()
        X = np.asarray(X, dtype=float).reshape(-1, space.n_encoded)
        cols = _raw_columns(space, X)
        if not self.leaves_:
            raise ValueError("the extracted tree has no leaves")
        bad = np.stack([_violations(space, leaf, cols) for leaf in self.leaves_], axis=1)
        return np.argmin(bad, axis=1)

    @property
    def n_leaves(self) -> int:
        return len(self.leaves_)

    @property
    def complete(self) -> bool:
        """Whether every leaf's predicates were found."""
        return all(leaf["complete"] for leaf in self.leaves_)

    def to_dict(self) -> dict[str, Any]:
        """The tree as JSON-able data: its feature space and its leaves."""
        return {"space": json.loads(self.space), "leaves": self.leaves_}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _output_text(self, leaf: Leaf) -> str:
        raise NotImplementedError

    def to_rules(self) -> str:
        """One readable rule a leaf: ``if <predicates> then <output>``."""
        lines = []
        for leaf in self.leaves_:
            preds = [_predicate_text(n, p) for n, p in leaf["predicates"].items()]
            cond = " and ".join(preds) if preds else "always"
            tail = "" if leaf["complete"] else "  # incomplete"
            lines.append(f"if {cond} then {self._output_text(leaf)}{tail}")
        return "\n".join(lines) + "\n"


class ExtractedTreeClassifier(ClassifierMixin, _ExtractedTree):
    """A classification tree extracted through a prediction API.

    Parameters
    ----------
    space : str
        The FeatureSpace (JSON) whose model space the tree predicts on.

    Attributes
    ----------
    leaves_ : list of dict
        ``{"predicates": {name: {"min", "max"} or {"in": [...]}}, "label", "confidence",
        "probabilities", "complete"}``.
    classes_ : ndarray
        Class labels, in the order of ``probabilities``.

    Examples
    --------
    >>> space = FeatureSpace.continuous(1)
    >>> tree = ExtractedTreeClassifier(space.to_json())
    >>> tree.classes_ = np.array([0, 1])
    >>> tree.leaves_ = [
    ...     {"predicates": {"x0": {"max": 0.0}}, "label": 0, "confidence": 0.9,
    ...      "probabilities": None, "complete": True},
    ...     {"predicates": {"x0": {"min": 0.0}}, "label": 1, "confidence": 0.8,
    ...      "probabilities": None, "complete": True}]
    >>> tree.predict([[-0.5], [0.5]]).tolist()
    [0, 1]
    >>> print(tree.to_rules(), end="")
    if x0 <= 0 then 0 (confidence 0.9)
    if x0 > 0 then 1 (confidence 0.8)
    """

    def predict(self, X: Any) -> np.ndarray:
        labels = np.array([leaf["label"] for leaf in self.leaves_])
        return labels[self.leaf_index(X)]

    def _has_probabilities(self) -> bool:
        return bool(self.leaves_) and all(leaf.get("probabilities") is not None
                                          for leaf in self.leaves_)

    @available_if(_has_probabilities)
    def predict_proba(self, X: Any) -> np.ndarray:
        """The class probabilities the API showed for each row's leaf."""
        proba = np.array([leaf["probabilities"] for leaf in self.leaves_], dtype=float)
        return np.nan_to_num(proba[self.leaf_index(X)])

    def _output_text(self, leaf: Leaf) -> str:
        conf = leaf.get("confidence")
        return f"{leaf['label']}" + ("" if conf is None else f" (confidence {conf:g})")


class ExtractedTreeRegressor(RegressorMixin, _ExtractedTree):
    """A regression tree extracted through a prediction API (see the classifier).

    Examples
    --------
    >>> tree = ExtractedTreeRegressor(FeatureSpace.continuous(1).to_json())
    >>> tree.leaves_ = [{"predicates": {}, "value": 2.5, "confidence": 0.1,
    ...                  "complete": True}]
    >>> tree.predict([[0.3]]).tolist()
    [2.5]
    """

    def predict(self, X: Any) -> np.ndarray:
        values = np.array([leaf["value"] for leaf in self.leaves_], dtype=float)
        return values[self.leaf_index(X)]

    def _output_text(self, leaf: Leaf) -> str:
        conf = leaf.get("confidence")
        return f"{leaf['value']:g}" + ("" if conf is None else f" (± {conf:g})")

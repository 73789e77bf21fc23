"""TreeService: a fitted scikit-learn tree answering the way BigML served trees in 2016.

An answer holds the predicted label (or regression value) and a *confidence*: for a
classifier the lower bound of the Wilson score interval (z = 1.96) of the majority class's
share among the node's training rows, as BigML computes it; for a regressor the half-width
of the 95% interval of the node's mean (1.96 * sqrt(impurity / n)). The pair (label,
confidence) is the node's identity in the paper's sense. An incomplete query (every
model-space column of a feature NaN) walks the tree until the first node that splits on a
missing feature and is answered with that node's output; the answer's ``fields`` then
name the input's features and that node's split feature. A split on a one-hot column is
a split on a set of values of one categorical feature: the service speaks in raw features.

References: Tramèr et al., USENIX Security 2016, section 4.2 (identity oracles, incomplete
queries) and 4.2.2 (BigML's prediction, confidence and fields).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from stealml.answers import to_jsonable
from stealml.exceptions import UnsupportedModelError
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

__all__ = ["TreeService", "identity_key", "serves_as_tree", "wilson_lower_bound"]

Z_95 = 1.96


def wilson_lower_bound(p: np.ndarray, n: np.ndarray, z: float = Z_95) -> np.ndarray:
    """Lower bound of the Wilson score interval of a proportion ``p`` out of ``n`` rows."""
    p = np.asarray(p, dtype=float)
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre - spread) / (1 + z2 / n)


SMALL_BATCH = 16


def _walk(t: Any, x: np.ndarray) -> int:
    """One row's stop node, walked in Python (faster than numpy for a few rows)."""
    left, right, feature, threshold = (t.children_left, t.children_right, t.feature,
                                       t.threshold)
    node = 0
    while left[node] >= 0:
        v = x[feature[node]]
        if np.isnan(v):
            break
        node = left[node] if v <= threshold[node] else right[node]
    return int(node)


def serves_as_tree(model: Any) -> bool:
    """Whether ``stealml extract`` serves ``model`` with BigML's tree semantics."""
    return isinstance(model, (DecisionTreeClassifier, DecisionTreeRegressor))


def identity_key(label: Any, confidence: float | None) -> str:
    """The identity an answer leaks: its label and confidence, as one string."""
    return json.dumps([to_jsonable(label), confidence])


class TreeService(BaseEstimator):
    """A fitted ``DecisionTreeClassifier``/``Regressor`` behind BigML's answer semantics.

    Give it to :class:`~stealml.oracles.LocalOracle`; without an explicit policy the
    oracle then accepts incomplete queries and answers them as BigML does.

    Parameters
    ----------
    tree : DecisionTreeClassifier or DecisionTreeRegressor
        Fitted on model-space rows (``FeatureSpace.encode``).
    space : FeatureSpace, optional
        The raw features behind the model space (default: the tree's inputs, continuous).

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from stealml.oracles import LocalOracle
    >>> tree = DecisionTreeClassifier(max_depth=1).fit([[-1.0], [1.0]], [0, 1])
    >>> oracle = LocalOracle(TreeService(tree))
    >>> oracle.query([[np.nan], [1.0]]).raw[0]["fields"]
    ['x0']
    """

    def __init__(self, tree: Any, space: FeatureSpace | None = None) -> None:
        self.tree = tree
        self.space = space

    # -- what it is -------------------------------------------------------------------
    def _check(self) -> Any:
        if not isinstance(self.tree, (DecisionTreeClassifier, DecisionTreeRegressor)) or \
                not hasattr(self.tree, "tree_"):
            raise UnsupportedModelError(
                f"a TreeService needs a fitted scikit-learn decision tree, not a "
                f"{type(self.tree).__name__}")
        return self.tree.tree_

    def __sklearn_tags__(self) -> Any:
        return self.tree.__sklearn_tags__()

    @property
    def is_regressor(self) -> bool:
        return isinstance(self.tree, DecisionTreeRegressor)

    @property
    def n_features_in_(self) -> int:
        return int(self.tree.n_features_in_)

    @property
    def classes_(self) -> np.ndarray:
        if self.is_regressor:
            raise AttributeError("a regression tree has no classes")
        return np.asarray(self.tree.classes_)

    def feature_space(self) -> FeatureSpace:
        """The raw features the service speaks in."""
        return self.space if self.space is not None else FeatureSpace.continuous(
            self.n_features_in_)

    def reveals(self, policy: ApiPolicy) -> frozenset[str]:
        """What answers hold under ``policy`` (see :attr:`Oracle.reveals`)."""
        out = {"labels"}
        if policy.reveals_probabilities:
            out |= {"ids", "values"} if self.is_regressor else {"ids", "probabilities"}
        if policy.incomplete != "reject":
            out.add("incomplete")
        return frozenset(out)

    # -- walking the tree -------------------------------------------------------------
    def stop_nodes(self, X: np.ndarray) -> np.ndarray:
        """Node at which each model-space row stops: a leaf, or the first node that splits
        on a missing (NaN) column. Compares in float32, as scikit-learn's trees do."""
        t = self._check()
        X32 = np.asarray(X, dtype=np.float32)
        if len(X32) <= SMALL_BATCH:
            return np.array([_walk(t, x) for x in X32], dtype=np.intp)
        node = np.zeros(len(X32), dtype=np.intp)
        active = np.ones(len(X32), dtype=bool)
        while active.any():
            rows = np.flatnonzero(active)
            nd = node[rows]
            leaf = t.children_left[nd] < 0
            x = X32[rows, np.where(leaf, 0, t.feature[nd])]
            stop = leaf | np.isnan(x)
            nxt = np.where(x <= t.threshold[nd], t.children_left[nd], t.children_right[nd])
            node[rows] = np.where(stop, nd, nxt)
            active[rows[stop]] = False
        return node

    def _node_outputs(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label (or value), confidence and class distribution of each node."""
        t = self._check()
        value = t.value[nodes, 0, :]
        n = t.n_node_samples[nodes]
        if self.is_regressor:
            conf = Z_95 * np.sqrt(np.maximum(t.impurity[nodes], 0.0) / np.maximum(n, 1))
            return value[:, 0], conf, value
        dist = value / np.maximum(value.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        top = np.argmax(dist, axis=1)
        conf = wilson_lower_bound(dist[np.arange(len(top)), top], n)
        return self.classes_[top], conf, dist

    def predict(self, X: Any) -> np.ndarray:
        """The tree's prediction for complete model-space rows."""
        return self._node_outputs(self.stop_nodes(np.asarray(X, dtype=float)))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """The class distribution of the leaf each complete row reaches."""
        if self.is_regressor:
            raise AttributeError("a regression tree has no predict_proba")
        return self._node_outputs(self.stop_nodes(np.asarray(X, dtype=float)))[2]

    # -- answering --------------------------------------------------------------------
    def leaf_identities(self, policy: ApiPolicy) -> list[str]:
        """The identity (label, confidence) each leaf answers with under ``policy``."""
        t = self._check()
        labels, conf, _ = self._node_outputs(np.flatnonzero(t.children_left < 0))
        if self.is_regressor:
            labels = policy.round(labels.astype(float))
        return [identity_key(lab, float(c))
                for lab, c in zip(to_jsonable(labels), policy.round(conf), strict=True)]

    def _fields(self, X: np.ndarray, nodes: np.ndarray) -> list[list[str]]:
        space = self.feature_space()
        names = space.names
        owner = np.repeat(np.arange(space.n_features), [f.width for f in space.features])
        t = self._check()
        present = ~np.isnan(X)
        out = []
        for row, nd in zip(present, nodes, strict=True):
            used = set(owner[row].tolist())
            if t.children_left[nd] >= 0:
                used.add(int(owner[t.feature[nd]]))
            out.append([names[i] for i in sorted(used)])
        return out

    def answer_records(self, X: np.ndarray, policy: ApiPolicy) -> list[dict[str, Any]]:
        """Answer validated model-space rows with JSON-able records, ``policy`` applied."""
        X = np.asarray(X, dtype=float)
        if policy.incomplete == "zeros":
            X = np.where(np.isnan(X), 0.0, X)
        nodes = self.stop_nodes(X)
        labels, conf, dist = self._node_outputs(nodes)
        fields = self._fields(X, nodes)
        if self.is_regressor:
            labels = policy.round(labels.astype(float))
        elif policy.perturbs:  # the confidence is perturbed as a two-class answer
            conf = policy.perturb(np.column_stack([conf, 1.0 - conf]), X)[:, 0]
        shown = None
        if not self.is_regressor:
            labels, shown = policy.apply(labels, dist, X, self.classes_)
        conf = policy.round(conf)
        classes = [] if self.is_regressor else [str(c) for c in to_jsonable(self.classes_)]
        records = []
        for i, label in enumerate(to_jsonable(labels)):
            raw: dict[str, Any] = {"prediction": label, "fields": fields[i]}
            rec: dict[str, Any] = {"label": label, "raw": raw}
            if policy.reveals_probabilities:
                raw["confidence"] = float(conf[i])
                rec["id"] = identity_key(label, float(conf[i]))
                if self.is_regressor:
                    rec["value"] = label
                elif shown is not None:
                    row = [None if np.isnan(p) else float(p) for p in shown[i]]
                    rec["probabilities"] = row
                    raw["probabilities"] = {c: p for c, p in zip(classes, row, strict=True)
                                            if p is not None}
            records.append(rec)
        return records

"""Extracted trees as scikit-learn estimators: a tree, a random forest, gradient boosting.

An extracted tree (:mod:`stealml.models.tree`) is a list of leaves, each a box of
predicates over raw features. :func:`to_sklearn_tree` grows a scikit-learn tree over the
model space that cuts the space along the boxes' faces, recursively, until each region
meets one box: a continuous predicate becomes a threshold on the feature's scaled column,
a categorical one a test on its one-hot columns. A box that a cut runs through is kept on
both sides, so any set of boxes gives a tree; a region that meets no box (a part the
attack never reached) answers as the extracted tree does at its centre. The forest and
boosting builders put such trees into scikit-learn's own ensembles, so that a stolen
forest *is* a ``RandomForestClassifier`` and a stolen boosted model *is* a
``GradientBoostingClassifier``: model files, ``predict_proba`` and tools work as usual.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from stealml.models.tree import ExtractedTreeClassifier, ExtractedTreeRegressor
from stealml.space import CategoricalFeature, FeatureSpace

__all__ = ["to_gradient_boosting", "to_random_forest", "to_sklearn_tree"]

Region = list[Any]  # per raw feature: (lo, hi) raw interval, or a frozenset of values
_NODE = [("left_child", "<i8"), ("right_child", "<i8"), ("feature", "<i8"),
         ("threshold", "<f8"), ("impurity", "<f8"), ("n_node_samples", "<i8"),
         ("weighted_n_node_samples", "<f8"), ("missing_go_to_left", "u1")]
MAX_DEPTH = 200  # a region is cut at most this deep (a tree of boxes needs far less)


class _Builder:
    """Grows the node arrays of one scikit-learn tree from an extracted tree's leaves."""

    def __init__(self, extracted: Any, space: FeatureSpace, n_values: int) -> None:
        self.extracted = extracted
        self.space = space
        self.n_values = n_values
        self.leaves = [self._box(leaf) for leaf in extracted.leaves_]
        self.outputs = [self._output(leaf) for leaf in extracted.leaves_]
        self.nodes: list[tuple[Any, ...]] = []
        self.values: list[np.ndarray] = []
        self.depth = 0

    # -- the leaves as boxes ------------------------------------------------------------
    def _box(self, leaf: dict[str, Any]) -> Region:
        box: Region = [frozenset(f.values) if isinstance(f, CategoricalFeature)
                       else (-math.inf, math.inf) for f in self.space.features]
        for name, pred in leaf["predicates"].items():
            j = self.space.names.index(name)
            if "in" in pred:
                box[j] = frozenset(pred["in"])
            else:
                lo, hi = pred.get("min"), pred.get("max")
                box[j] = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        return box

    def _output(self, leaf: dict[str, Any]) -> np.ndarray:
        if isinstance(self.extracted, ExtractedTreeRegressor):
            return np.array([float(leaf["value"])])
        proba = leaf.get("probabilities")
        if proba is not None:
            return np.nan_to_num(np.asarray(proba, dtype=float))
        out = np.zeros(self.n_values)
        out[list(self.extracted.classes_).index(leaf["label"])] = 1.0
        return out

    @staticmethod
    def _meets(box: Region, region: Region) -> bool:
        for b, r in zip(box, region, strict=True):
            if isinstance(r, frozenset):
                if not (b & r):
                    return False
            elif max(b[0], r[0]) >= min(b[1], r[1]):
                return False
        return True

    # -- cuts ---------------------------------------------------------------------------
    def _cuts(self, region: Region, inside: list[int]) -> list[tuple[int, Any]]:
        """Candidate cuts of ``region``: (feature, threshold) or (feature, one value)."""
        out: list[tuple[int, Any]] = []
        for j, r in enumerate(region):
            if isinstance(r, frozenset):
                if len(r) > 1:
                    out += [(j, v) for v in sorted(r)
                            if any(v in self.leaves[k][j] and (r - {v}) & self.leaves[k][j]
                                   and not r <= self.leaves[k][j] for k in inside)
                            or any(self.leaves[k][j] & r == frozenset({v}) for k in inside)]
            else:
                ends = {e for k in inside for e in self.leaves[k][j]}
                out += [(j, t) for t in sorted(ends) if r[0] < t < r[1]]
        return out

    def _sides(self, region: Region, cut: tuple[int, Any]) -> tuple[Region, Region]:
        j, t = cut
        left, right = list(region), list(region)
        if isinstance(region[j], frozenset):
            left[j], right[j] = region[j] - {t}, frozenset({t})
        else:
            left[j], right[j] = (region[j][0], t), (t, region[j][1])
        return left, right

    def _best_cut(self, region: Region, inside: list[int]) -> tuple[int, Any] | None:
        """The cut that splits the fewest boxes, then the most evenly."""
        best, best_key = None, None
        for cut in self._cuts(region, inside):
            left, right = self._sides(region, cut)
            n_l = sum(self._meets(self.leaves[k], left) for k in inside)
            n_r = sum(self._meets(self.leaves[k], right) for k in inside)
            if n_l == 0 or n_r == 0:
                continue
            key = (n_l + n_r - len(inside), abs(n_l - n_r))
            if best_key is None or key < best_key:
                best, best_key = cut, key
        return best

    # -- growing ------------------------------------------------------------------------
    def _centre(self, region: Region) -> np.ndarray:
        row = []
        for f, r in zip(self.space.features, region, strict=True):
            if isinstance(f, CategoricalFeature):
                row.append(sorted(r)[0])
            else:
                lo, hi = max(r[0], f.min), min(r[1], f.max)
                row.append((lo + hi) / 2.0)
        return self.space.encode([row], allow_missing=False)

    def _leaf_value(self, region: Region, inside: list[int]) -> np.ndarray:
        if len(inside) == 1:
            return self.outputs[inside[0]]
        k = int(self.extracted.leaf_index(self._centre(region))[0])
        return self.outputs[k]

    def _column_cut(self, cut: tuple[int, Any]) -> tuple[int, float]:
        """The cut as scikit-learn's test ``X[:, column] <= threshold``."""
        j, t = cut
        cols = self.space.columns(j)
        f = self.space.features[j]
        if isinstance(f, CategoricalFeature):
            return cols.start + f.values.index(t), 0.5
        scale = 2.0 / (f.max - f.min)
        return cols.start, float((t - f.min) * scale - 1.0)

    def grow(self, region: Region, inside: list[int], depth: int) -> int:
        node = len(self.nodes)
        self.nodes.append(())
        self.values.append(np.zeros(self.n_values))
        self.depth = max(self.depth, depth)
        cut = self._best_cut(region, inside) if len(inside) > 1 and depth < MAX_DEPTH \
            else None
        if cut is None:
            self.nodes[node] = (-1, -1, -2, -2.0, 0.0, 1, 1.0, 0)
            self.values[node] = self._leaf_value(region, inside)
            return node
        left, right = self._sides(region, cut)
        column, threshold = self._column_cut(cut)
        # scikit-learn sends X[:, column] <= threshold left; a one-hot "= value" goes right
        lo = self.grow(left, [k for k in inside if self._meets(self.leaves[k], left)],
                       depth + 1)
        hi = self.grow(right, [k for k in inside if self._meets(self.leaves[k], right)],
                       depth + 1)
        self.nodes[node] = (lo, hi, column, threshold, 0.0, 2, 2.0, 1)
        self.values[node] = (self.values[lo] + self.values[hi]) / 2.0
        return node

    def tree(self) -> Tree:
        region: Region = [frozenset(f.values) if isinstance(f, CategoricalFeature)
                          else (-math.inf, math.inf) for f in self.space.features]
        self.grow(region, list(range(len(self.leaves))), 0)
        n_classes = np.array([self.n_values if self.n_values > 1 else 1], dtype=np.intp)
        tree = Tree(self.space.n_encoded, n_classes, 1)
        tree.__setstate__({"max_depth": self.depth, "node_count": len(self.nodes),
                           "nodes": np.array(self.nodes, dtype=_NODE),
                           "values": np.array(self.values, dtype=float)[:, None, :]})
        return tree


def to_sklearn_tree(extracted: Any, classes: Any = None) -> Any:
    """An extracted tree as a fitted ``DecisionTreeClassifier``/``Regressor``.

    ``classes`` names the class order of the leaves' probabilities (default the
    extracted tree's). Rows are model-space rows, as for the extracted tree.

    Examples
    --------
    >>> space = FeatureSpace.continuous(1)
    >>> tree = ExtractedTreeClassifier(space.to_json())
    >>> tree.classes_ = np.array([0, 1])
    >>> tree.leaves_ = [
    ...     {"predicates": {"x0": {"max": 0.0}}, "label": 0, "confidence": 0.9,
    ...      "probabilities": [0.9, 0.1], "complete": True},
    ...     {"predicates": {"x0": {"min": 0.0}}, "label": 1, "confidence": 0.8,
    ...      "probabilities": [0.2, 0.8], "complete": True}]
    >>> to_sklearn_tree(tree).predict_proba([[-0.5], [0.5]]).tolist()
    [[0.9, 0.1], [0.2, 0.8]]
    """
    space = FeatureSpace.from_json(extracted.space)
    if isinstance(extracted, ExtractedTreeRegressor):
        builder = _Builder(extracted, space, 1)
        model: Any = DecisionTreeRegressor()
    elif isinstance(extracted, ExtractedTreeClassifier):
        classes = np.asarray(extracted.classes_ if classes is None else classes)
        builder = _Builder(extracted, space, len(classes))
        model = DecisionTreeClassifier()
        model.classes_ = classes
        model.n_classes_ = len(classes)
    else:
        raise TypeError(f"not an extracted tree: {type(extracted).__name__}")
    model.tree_ = builder.tree()
    model.n_features_in_ = space.n_encoded
    model.n_outputs_ = 1
    model.max_features_ = space.n_encoded
    return model


def to_random_forest(trees: list[Any], classes: Any) -> RandomForestClassifier:
    """Extracted classification trees as one fitted ``RandomForestClassifier`` (the mean
    of the trees' leaf distributions, as scikit-learn's forest predicts)."""
    classes = np.asarray(classes)
    members = [to_sklearn_tree(t, np.arange(len(classes))) for t in trees]
    forest = RandomForestClassifier(n_estimators=len(members))
    forest.estimators_ = members
    forest.estimator_ = DecisionTreeClassifier()
    forest.classes_ = classes
    forest.n_classes_ = len(classes)
    forest.n_outputs_ = 1
    forest.n_features_in_ = members[0].n_features_in_
    return forest


def to_gradient_boosting(trees: list[Any], classes: Any, init: Any,
                         learning_rate: float) -> GradientBoostingClassifier:
    """Extracted regression trees (stage by stage, class by class) as a fitted
    ``GradientBoostingClassifier`` with raw score ``init + learning_rate * sum(trees)``."""
    from scipy.special import expit, softmax
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

    classes = np.asarray(classes)
    k = 1 if len(classes) == 2 else len(classes)
    members = np.array([to_sklearn_tree(t) for t in trees], dtype=object).reshape(-1, k)
    init = np.atleast_1d(np.asarray(init, dtype=float))
    prior = (np.array([1 - expit(init[0]), expit(init[0])]) if k == 1
             else np.asarray(softmax(init)))
    dummy = DummyClassifier(strategy="prior")
    dummy.classes_ = np.arange(len(classes))
    dummy.class_prior_ = prior
    dummy.n_classes_ = len(classes)
    dummy.n_outputs_ = 1
    dummy._strategy = "prior"
    dummy.sparse_output_ = False
    model = GradientBoostingClassifier(n_estimators=len(members),
                                       learning_rate=float(learning_rate))
    model.estimators_ = members
    model.init_ = dummy
    model._loss = HalfBinomialLoss() if k == 1 else HalfMultinomialLoss(n_classes=k)
    model.classes_ = classes
    model.n_classes_ = len(classes)
    model.n_trees_per_iteration_ = k
    model.n_estimators_ = len(members)
    model.n_features_in_ = members[0, 0].n_features_in_
    model.max_features_ = model.n_features_in_
    model.train_score_ = np.zeros(len(members))
    return model

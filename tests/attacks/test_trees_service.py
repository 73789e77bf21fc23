"""TreeService: scikit-learn trees answering with BigML's semantics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from stealml.exceptions import NonFiniteInputError, UnsupportedModelError
from stealml.models.tree_service import TreeService, wilson_lower_bound
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace


@pytest.fixture(scope="module")
def cat_tree(mixed_space: FeatureSpace) -> DecisionTreeClassifier:
    """A tree whose root splits on one category of ``work`` (a one-hot column)."""
    raw = mixed_space.sample(400, 3)
    y = np.where(raw[:, 3] == "self", 2, (raw[:, 0].astype(float) > 40).astype(int))
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(mixed_space.encode(raw), y)


def test_complete_answers_match_the_tree(cat_tree, mixed_space) -> None:
    oracle = LocalOracle(TreeService(cat_tree, mixed_space), mixed_space)
    X = mixed_space.sample_encoded(300, 1)
    ans = oracle.query(X)
    assert np.array_equal(ans.labels, cat_tree.predict(X))
    assert np.allclose(ans.probabilities, cat_tree.predict_proba(X))
    leaf = cat_tree.apply(X)
    n = cat_tree.tree_.n_node_samples[leaf]
    conf = wilson_lower_bound(cat_tree.predict_proba(X).max(axis=1), n)
    assert np.allclose([r["confidence"] for r in ans.raw], conf)
    assert len(set(ans.ids)) == len(set(leaf))  # one identity per leaf here
    assert {"ids", "incomplete", "probabilities"} <= oracle.reveals


def test_incomplete_query_stops_at_the_first_missing_split(cat_tree, mixed_space) -> None:
    oracle = LocalOracle(TreeService(cat_tree, mixed_space), mixed_space)
    root = oracle.query_raw([[None, None, None, None]])
    assert root.raw[0]["fields"] == ["work"]  # the root tests work=self, a one-hot column
    value = cat_tree.tree_.value[0, 0]
    assert root.labels[0] == cat_tree.classes_[np.argmax(value)]
    deeper = oracle.query_raw([[None, None, None, "self"], [None, None, None, "gov"]])
    assert deeper.labels[0] == 2
    assert deeper.raw[1]["fields"] == ["age", "work"]


def test_policy_rounds_and_hides(cat_tree, mixed_space) -> None:
    service = TreeService(cat_tree, mixed_space)
    rounded = LocalOracle(service, mixed_space, ApiPolicy(rounding=2, incomplete="native"))
    ans = rounded.query(mixed_space.sample_encoded(50, 2))
    assert all(round(r["confidence"], 2) == r["confidence"] for r in ans.raw)
    labels_only = LocalOracle(service, mixed_space, ApiPolicy(output="labels"))
    assert labels_only.reveals == frozenset({"labels"})
    assert labels_only.query(mixed_space.sample_encoded(5, 2)).ids is None
    with pytest.raises(NonFiniteInputError, match="incomplete"):
        labels_only.query_raw([[None, None, None, None]])


def test_regression_tree_answers_value_and_error(mixed_space) -> None:
    X = mixed_space.sample_encoded(300, 4)
    tree = DecisionTreeRegressor(max_leaf_nodes=8, random_state=0).fit(X, 3 * X[:, 0] + X[:, 1])
    oracle = LocalOracle(TreeService(tree, mixed_space), mixed_space)
    ans = oracle.query(X[:20])
    assert np.allclose(ans.values, tree.predict(X[:20]))
    assert oracle.classes is None and "values" in oracle.reveals
    assert json.loads(ans.ids[0])[0] == pytest.approx(ans.values[0])


def test_only_trees_are_served(binary_logreg, mixed_space) -> None:
    with pytest.raises(UnsupportedModelError, match="decision tree"):
        TreeService(binary_logreg, mixed_space).predict(mixed_space.sample_encoded(2, 0))
    assert not isinstance(binary_logreg, DecisionTreeClassifier)
    assert isinstance(binary_logreg, LogisticRegression)

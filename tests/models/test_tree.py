"""The extracted-tree estimators: prediction, export, model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from stealml.attacks import TopDown
from stealml.modelio import load_model, save_model
from stealml.models.tree import ExtractedTreeClassifier, ExtractedTreeRegressor
from stealml.models.tree_service import TreeService
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace


@pytest.fixture(scope="module")
def stolen(small_tree: DecisionTreeClassifier, mixed_space: FeatureSpace):
    return TopDown(random_state=0).run(
        LocalOracle(TreeService(small_tree, mixed_space), mixed_space)).model


def test_predicts_like_the_target(stolen, small_tree, mixed_space) -> None:
    X = mixed_space.sample_encoded(500, 3)
    assert np.array_equal(stolen.predict(X), small_tree.predict(X))
    assert np.allclose(stolen.predict_proba(X), small_tree.predict_proba(X))
    assert list(stolen.classes_) == list(small_tree.classes_)


def test_rules_and_json_are_readable(stolen, mixed_space) -> None:
    rules = stolen.to_rules().splitlines()
    assert len(rules) == stolen.n_leaves
    assert all(r.startswith("if ") and " then " in r for r in rules)
    assert "age" in stolen.to_rules()  # raw feature names, raw units
    data = json.loads(stolen.to_json())
    assert FeatureSpace.from_dict(data["space"]) == mixed_space
    assert len(data["leaves"]) == stolen.n_leaves


def test_saves_and_loads_as_a_trusted_model_file(stolen, mixed_space, tmp_path) -> None:
    path = tmp_path / "stolen.skops"
    save_model(path, stolen, mixed_space, {"attack": "top-down"})
    loaded = load_model(path)  # stealml types are trusted: no --trusted needed
    X = mixed_space.sample_encoded(100, 4)
    assert np.array_equal(loaded.model.predict(X), stolen.predict(X))
    assert loaded.model.to_rules() == stolen.to_rules()


def test_no_probabilities_means_no_predict_proba(mixed_space) -> None:
    tree = ExtractedTreeClassifier(mixed_space.to_json())
    tree.classes_ = np.array([0, 1])
    tree.leaves_ = [{"predicates": {"sex": {"in": ["F"]}}, "label": 0, "confidence": None,
                     "probabilities": None, "complete": True},
                    {"predicates": {"sex": {"in": ["M"]}}, "label": 1, "confidence": None,
                     "probabilities": None, "complete": True}]
    assert not hasattr(tree, "predict_proba")
    X = mixed_space.encode([[20, 10, "F", "gov"], [20, 10, "M", "gov"]])
    assert tree.predict(X).tolist() == [0, 1]


def test_regressor_predicts_values(mixed_space) -> None:
    tree = ExtractedTreeRegressor(mixed_space.to_json())
    tree.leaves_ = [{"predicates": {"age": {"min": None, "max": 40.5}}, "value": 1.5,
                     "confidence": 0.2, "complete": True},
                    {"predicates": {"age": {"min": 40.5, "max": None}}, "value": -2.0,
                     "confidence": 0.1, "complete": True}]
    X = mixed_space.encode([[30, 10, "F", "gov"], [50, 10, "M", "gov"]])
    assert tree.predict(X).tolist() == [1.5, -2.0]
    assert "age <= 40.5 then 1.5" in tree.to_rules()

"""A BigML-like tree behind the service, stolen over HTTP with incomplete queries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from stealml.attacks import TopDown
from stealml.datasets import load
from stealml.modelio import save_model
from stealml.models.tree_service import TreeService
from stealml.oracles import HttpOracle, LocalOracle
from stealml.policies import ApiPolicy
from stealml.server import load_settings, running


@pytest.mark.slow
def test_top_down_over_http_matches_the_local_attack(tmp_path) -> None:
    german = load("german-credit", random_state=0)
    tree = DecisionTreeClassifier(max_leaf_nodes=26, random_state=0).fit(
        german.X_train, german.y_train)
    save_model(tmp_path / "german.skops", tree, german.space)
    settings = load_settings(None, max_batch=100, models=[
        {"name": "german", "path": tmp_path / "german.skops", "rounding": 5,
         "incomplete": "native", "price": 0.0001}])
    local = TopDown(random_state=0).run(LocalOracle(
        TreeService(tree, german.space), german.space,
        ApiPolicy(incomplete="native", rounding=5)))
    with running(settings) as url:
        oracle = HttpOracle(url, "german")
        assert {"ids", "incomplete"} <= oracle.reveals
        remote = TopDown(random_state=0).run(oracle)
    assert remote.complete and remote.queries == local.queries
    X = np.vstack([german.X_test, german.space.sample_encoded(2000, 1)])
    assert np.array_equal(remote.model.predict(X), tree.predict(X))

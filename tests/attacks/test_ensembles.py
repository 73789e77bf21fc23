"""Tree ensembles: served with per-tree identities, extracted tree by tree, rebuilt as
scikit-learn ensembles; and the retraining attacks against them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from stealml.attacks import EnsemblePaths, RetrainUniform
from stealml.datasets import load
from stealml.exceptions import OracleCapabilityError, UnsupportedModelError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.modelio import load_model, save_model
from stealml.models.ensemble_service import EnsembleService
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy


@pytest.fixture(scope="module")
def iris():
    return load("iris", random_state=0)


def _api(model, ds, incomplete="native", per_tree=True, ledger=None):
    return LocalOracle(EnsembleService(model, ds.space, per_tree=per_tree), ds.space,
                       ApiPolicy(rounding=5, incomplete=incomplete), ledger=ledger)


def test_service_answers_like_the_ensemble_and_each_tree(iris) -> None:
    forest = RandomForestClassifier(n_estimators=4, max_leaf_nodes=6, random_state=0).fit(
        iris.X_train, iris.y_train)
    answers = _api(forest, iris).query(iris.X_test[:5])
    np.testing.assert_allclose(answers.probabilities, forest.predict_proba(iris.X_test[:5]),
                               atol=5e-6)
    trees = answers.raw[0]["trees"]
    assert len(trees) == 4 and all(t["label"] in forest.classes_ for t in trees)
    assert "tree-ids" not in _api(forest, iris, per_tree=False).reveals
    with pytest.raises(OracleCapabilityError, match="tree-ids"):
        EnsemblePaths().run(_api(forest, iris, per_tree=False))


def test_forest_is_extracted_tree_by_tree_into_a_random_forest(iris, tmp_path) -> None:
    forest = RandomForestClassifier(n_estimators=5, max_leaf_nodes=8, random_state=0).fit(
        iris.X_train, iris.y_train)
    result = EnsemblePaths(epsilon=1e-4, random_state=0).run(_api(forest, iris))
    stolen = result.model
    assert type(stolen) is RandomForestClassifier and len(stolen.estimators_) == 5
    assert result.complete and result.info["trees_extracted"] == 5
    fid = fidelity(forest, stolen, iris.space, iris.X_test, 5000, 0)
    assert fid["r_test"] == 0 and fid["r_unif"] <= 2e-3 and fid["tv_test"] < 1e-3
    save_model(tmp_path / "stolen.skops", stolen, iris.space)  # a plain sklearn file
    again = load_model(tmp_path / "stolen.skops").model
    np.testing.assert_array_equal(again.predict(iris.X_test), stolen.predict(iris.X_test))


def test_boosting_is_rebuilt_with_its_learning_rate_solved(iris) -> None:
    boosted = GradientBoostingClassifier(n_estimators=4, max_leaf_nodes=4, learning_rate=0.3,
                                         random_state=0).fit(iris.X_train, iris.y_train)
    result = EnsemblePaths(epsilon=1e-4, random_state=0).run(_api(boosted, iris))
    stolen = result.model
    assert type(stolen) is GradientBoostingClassifier and stolen.estimators_.shape == (4, 3)
    assert abs(result.info["calibration"]["learning_rate"] - 0.3) < 1e-3
    fid = fidelity(boosted, stolen, iris.space, iris.X_test, 5000, 0)
    assert fid["r_test"] == 0 and fid["r_unif"] <= 2e-3 and fid["tv_unif"] < 1e-3


def test_path_finding_per_tree_without_incomplete_queries(iris) -> None:
    forest = RandomForestClassifier(n_estimators=3, max_leaf_nodes=5, random_state=1).fit(
        iris.X_train, iris.y_train)
    result = EnsemblePaths(epsilon=1e-3, random_state=0).run(_api(forest, iris, "reject"))
    fid = fidelity(forest, result.model, iris.space, iris.X_test, 5000, 0)
    assert result.complete and fid["r_test"] == 0 and fid["r_unif"] <= 1e-2


def test_budget_cut_gives_a_partial_forest(iris) -> None:
    forest = RandomForestClassifier(n_estimators=6, max_leaf_nodes=8, random_state=0).fit(
        iris.X_train, iris.y_train)
    result = EnsemblePaths(epsilon=1e-4, random_state=0).run(
        _api(forest, iris, ledger=Ledger(budget=150)))
    assert not result.complete and result.queries <= 150
    assert 1 <= result.info["trees_extracted"] < 6
    assert len(result.model.predict(iris.X_test)) == len(iris.X_test)


def test_retraining_with_a_local_forest_on_a_labels_only_forest(iris) -> None:
    forest = RandomForestClassifier(n_estimators=10, max_leaf_nodes=8, random_state=0).fit(
        iris.X_train, iris.y_train)
    api = LocalOracle(EnsembleService(forest, iris.space), iris.space,
                      ApiPolicy(output="labels"), ledger=Ledger(budget=600))
    result = RetrainUniform(model="forest", random_state=0).run(api)
    fid = fidelity(forest, result.model, iris.space, iris.X_test, 5000, 0)
    assert result.queries == 600 and fid["r_test"] <= 0.05 and fid["r_unif"] <= 0.15


def test_a_budget_that_ends_among_the_checks_says_so(iris) -> None:
    # the budget (or a monitor's block) stops the attack before the first tree answers
    forest = RandomForestClassifier(n_estimators=3, max_leaf_nodes=4, random_state=0).fit(
        iris.X_train, iris.y_train)
    with pytest.raises(UnsupportedModelError, match="before one tree was extracted"):
        EnsemblePaths(epsilon=1e-4, random_state=0).run(
            _api(forest, iris, ledger=Ledger(budget=4)))

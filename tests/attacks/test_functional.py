"""Functionally-equivalent extraction of ReLU networks, on small real scikit-learn MLPs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier, MLPRegressor

from stealml.attacks import FunctionallyEquivalent
from stealml.attacks._relu_solve import solve_signs
from stealml.experiments.neural import output_error, parameter_error
from stealml.ledger import Ledger
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace


def _data(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, d))


@pytest.fixture(scope="module")
def softmax_mlp() -> MLPClassifier:
    X = _data(600, 6, 0)
    y = np.digitize(X[:, 0] * X[:, 1] + X[:, 2], [-0.4, 0.4])
    return MLPClassifier((12,), max_iter=600, random_state=0).fit(X, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_target_extracted_to_machine_precision(softmax_mlp, seed) -> None:
    result = FunctionallyEquivalent((12,), random_state=seed).run(LocalOracle(softmax_mlp))
    assert result.complete and result.info["neurons_found"] == [12]
    assert isinstance(result.model, MLPClassifier)
    err = output_error(softmax_mlp, result.model, FeatureSpace.continuous(6), n_points=5000,
                       n_lines=10)
    assert err["max_logit_error"] < 1e-9 and err["agreement_uniform"] == 1.0
    assert parameter_error(softmax_mlp, result.model) < 1e-9


def test_binary_logistic_output_and_unknown_architecture() -> None:
    X = _data(500, 5, 1)
    target = MLPClassifier((7,), max_iter=800, random_state=1).fit(X, X[:, 0] > X[:, 1] ** 2)
    result = FunctionallyEquivalent(random_state=0).run(LocalOracle(target))
    assert result.info["output"] == "binary" and result.info["neurons_found"] == [7]
    assert parameter_error(target, result.model) < 1e-8
    Xt = _data(2000, 5, 9)
    assert np.abs(target.predict_proba(Xt) - result.model.predict_proba(Xt)).max() < 1e-10


def test_regressor_values_are_its_raw_output() -> None:
    X = _data(400, 4, 2)
    target = MLPRegressor(hidden_layer_sizes=(9,), max_iter=800, random_state=2).fit(
        X, np.sin(2 * X[:, 0]) + X[:, 1])
    result = FunctionallyEquivalent((9,), random_state=3).run(LocalOracle(target))
    assert isinstance(result.model, MLPRegressor) and result.complete
    Xt = _data(2000, 4, 8)
    assert np.abs(target.predict(Xt) - result.model.predict(Xt)).max() < 1e-10


def test_short_budget_keeps_the_neurons_found(softmax_mlp) -> None:
    oracle = LocalOracle(softmax_mlp, ledger=Ledger(budget=1200))
    result = FunctionallyEquivalent((12,), random_state=0).run(oracle)
    assert result.queries <= 1200 and not result.complete
    assert 0 < result.info["neurons_found"][0] < 12
    assert result.model.coefs_[0].shape == (6, 12)  # the architecture, dead units padded


def test_signs_of_an_expansive_layer_by_subset_sum() -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 10))
    W /= np.linalg.norm(W, axis=1)[:, None]
    A = rng.normal(size=(1, 16))
    wrong = rng.random(16) < 0.5
    beta = -sum(np.outer(A[:, i], W[i]) for i in range(16) if wrong[i])
    mu, ok = solve_signs(A, W, beta)
    assert ok and np.array_equal(mu > 0.5, wrong)

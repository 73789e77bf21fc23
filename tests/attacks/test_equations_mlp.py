from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

from stealml.attacks import EquationSolving
from stealml.attacks.equations.mlp import mlp_parameter_error
from stealml.datasets import load
from stealml.exceptions import ConfigurationError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle
from stealml.oracles.http import raw_queries
from stealml.space import CategoricalFeature, ContinuousFeature, FeatureSpace


@pytest.fixture(scope="module")
def iris_mlp():
    ds = load("iris", random_state=0)
    target = MLPClassifier((5,), activation="tanh", max_iter=3000, random_state=0)
    return ds, target.fit(ds.X_train, ds.y_train)


def test_mlp_exact_with_k_queries(iris_mlp) -> None:
    ds, target = iris_mlp
    attack = EquationSolving(model_class="mlp", hidden_units=5, design="uniform",
                             random_state=0)
    k = attack.n_unknowns(ds.X.shape[1], 3)
    assert k == 5 * 5 + 3 * 6
    result = attack.run(LocalOracle(target, ds.space, ledger=Ledger(budget=k)))
    assert result.queries == k and result.complete
    assert type(result.model) is MLPClassifier
    fid = fidelity(target, result.model, ds.space, ds.X_test)
    assert fid["r_test"] == 0 and fid["r_unif"] == 0 and fid["tv_unif"] < 1e-9
    assert mlp_parameter_error(target, result.model) < 1e-8


def test_bad_activation(iris_mlp) -> None:
    ds, target = iris_mlp
    with pytest.raises(ConfigurationError, match="activation"):
        EquationSolving(model_class="mlp", hidden_units=5, activation="swish",
                        n_queries=10).run(LocalOracle(target, ds.space))


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_mlp_jacobian_design_exact_below_k(activation: str) -> None:
    ds = load("5-class", random_state=0)
    target = MLPClassifier((6,), activation=activation, max_iter=3000,
                           random_state=0).fit(ds.X_train, ds.y_train)
    attack = EquationSolving(model_class="mlp", hidden_units=6, activation=activation,
                             random_state=0)
    k = attack.n_unknowns(ds.X.shape[1], 5)
    oracle = LocalOracle(target, ds.space, ledger=Ledger(budget=k))
    result = attack.run(oracle)
    # 3 full Jacobians (21 queries each), 3 along the subspace (7 each), 18 plain points
    assert result.info["design"] == "jacobian" and result.complete
    assert result.queries == 3 * 21 + 3 * 7 + 18 < k
    assert result.info["jacobian_gap"] < 1e-4
    fid = fidelity(target, result.model, ds.space, ds.X_test)
    assert fid["r_test"] == 0 and fid["r_unif"] == 0 and fid["tv_unif"] < 1e-6
    assert mlp_parameter_error(target, result.model) < 1e-4


def test_mlp_jacobian_design_needs_its_budget(iris_mlp) -> None:
    ds, target = iris_mlp
    attack = EquationSolving(model_class="mlp", hidden_units=5, design="jacobian")
    with pytest.raises(ConfigurationError, match="needs 41 queries"):
        attack.run(LocalOracle(target, ds.space, ledger=Ledger(budget=30)))
    auto = EquationSolving(model_class="mlp", hidden_units=5, random_state=0).run(
        LocalOracle(target, ds.space, ledger=Ledger(budget=30)))
    assert auto.info["design"] == "uniform" and "needs 41" in auto.info["design_note"]
    assert auto.queries == 30  # 60 equations in 43 unknowns: the uniform fit still applies


class RawRowsOnly(LocalOracle):
    """A local model behind an API that takes raw feature values only, as HttpOracle's
    service: a row that is no valid encoding is refused (before any charge)."""

    def _fetch(self, X):
        raw_queries(self.space, X)
        return super()._fetch(X)


def test_mlp_falls_back_to_valid_rows_when_the_api_refuses_nudges() -> None:
    space = FeatureSpace([ContinuousFeature("a", 0.0, 1.0), ContinuousFeature("b", 0.0, 1.0),
                          CategoricalFeature("c", ("x", "y", "z"))])
    rng = np.random.default_rng(0)
    X = space.sample_encoded(400, rng)
    y = np.digitize(X[:, 0] + X[:, 1] + X[:, 3], [-0.4, 0.6])
    target = MLPClassifier((3,), activation="tanh", max_iter=3000, random_state=0).fit(X, y)
    oracle = RawRowsOnly(target, space, ledger=Ledger(budget=200))
    result = EquationSolving(model_class="mlp", hidden_units=3, random_state=0).run(oracle)
    assert result.info["design"] == "uniform"
    assert "refuses" in result.info["design_note"]
    assert result.queries == oracle.ledger.queries == 200  # the refused batch cost nothing
    assert fidelity(target, result.model, space)["r_unif"] < 0.01

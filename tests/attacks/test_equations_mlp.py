from __future__ import annotations

import pytest
from sklearn.neural_network import MLPClassifier

from stealml.attacks import EquationSolving
from stealml.attacks.equations.mlp import mlp_parameter_error
from stealml.datasets import load
from stealml.exceptions import ConfigurationError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle


@pytest.fixture(scope="module")
def iris_mlp():
    ds = load("iris", random_state=0)
    target = MLPClassifier((5,), activation="tanh", max_iter=3000, random_state=0)
    return ds, target.fit(ds.X_train, ds.y_train)


def test_mlp_exact_with_k_queries(iris_mlp) -> None:
    ds, target = iris_mlp
    attack = EquationSolving(model_class="mlp", hidden_units=5, random_state=0)
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

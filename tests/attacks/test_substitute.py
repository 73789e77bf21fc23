"""Substitute training from labels (Jacobian augmentation, Knockoff transfer sets)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

from stealml.attacks import SubstituteJacobian, SubstituteKnockoff
from stealml.attacks.substitute import input_gradient
from stealml.exceptions import FeatureCountError
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy


@pytest.fixture(scope="module")
def victim() -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.clip(rng.normal(0, 0.4, (900, 5)), -1, 1)
    y = np.digitize(X[:, 0] + X[:, 1] * X[:, 2], [-0.3, 0.3])
    model = MLPClassifier((16,), max_iter=1000, random_state=0).fit(X[:600], y[:600])
    return model, X[:600], X[600:]


def _agreement(a: MLPClassifier, b: MLPClassifier, X: np.ndarray) -> float:
    return float(np.mean(a.predict(X) == b.predict(X)))


def test_knockoff_on_natural_rows_copies_the_victim(victim) -> None:
    model, Xtr, Xte = victim
    oracle = LocalOracle(model, policy=ApiPolicy(output="labels"))
    result = SubstituteKnockoff(transfer=Xtr, n_queries=600, random_state=0).run(oracle)
    assert result.queries == 600 and result.complete
    assert isinstance(result.model, MLPClassifier)
    assert _agreement(model, result.model, Xte) >= 0.95


def test_jacobian_augmentation_grows_the_seed_set(victim) -> None:
    model, Xtr, Xte = victim
    oracle = LocalOracle(model, policy=ApiPolicy(output="labels"))
    result = SubstituteJacobian(seeds=Xtr[:100], n_queries=800, random_state=0).run(oracle)
    assert result.queries == 800 and result.info["rounds"] >= 2
    assert _agreement(model, result.model, Xte) >= 0.9


def test_input_gradient_matches_finite_differences(victim) -> None:
    model, Xtr, _ = victim
    X, y = Xtr[:5], model.predict(Xtr[:5])
    G = input_gradient(model, X, y)
    h = 1e-6
    idx = np.searchsorted(model.classes_, y)

    def logit(Z: np.ndarray) -> np.ndarray:
        H = np.maximum(Z @ model.coefs_[0] + model.intercepts_[0], 0)
        return (H @ model.coefs_[1] + model.intercepts_[1])[np.arange(len(Z)), idx]

    num = np.stack([(logit(X + h * e) - logit(X - h * e)) / (2 * h) for e in np.eye(5)], 1)
    assert np.allclose(G, num, atol=1e-6)


def test_transfer_rows_must_fit_the_space(victim) -> None:
    model, _, _ = victim
    oracle = LocalOracle(model, policy=ApiPolicy(output="labels"))
    with pytest.raises(FeatureCountError, match="transfer has 3 features"):
        SubstituteKnockoff(transfer=np.zeros((10, 3)), n_queries=5).run(oracle)
    assert oracle.ledger.queries == 0

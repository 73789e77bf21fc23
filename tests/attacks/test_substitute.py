"""Substitute training from labels (Jacobian augmentation, Knockoff transfer sets)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

from stealml.attacks import SubstituteJacobian, SubstituteKnockoff
from stealml.attacks._relu_model import average_mlps, make_relu_mlp
from stealml.attacks.substitute import input_gradient
from stealml.exceptions import ConfigurationError, FeatureCountError
from stealml.experiments.neural import logits
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
    result = SubstituteKnockoff(transfer=Xtr, n_queries=600, n_estimators=2,
                                random_state=0).run(oracle)
    assert result.queries == 600 and result.complete
    assert isinstance(result.model, MLPClassifier)
    assert result.model.hidden_layer_sizes == (128,)  # two networks of 64 units
    assert _agreement(model, result.model, Xte) >= 0.95


def test_jacobian_augmentation_grows_the_seed_set(victim) -> None:
    model, Xtr, Xte = victim
    oracle = LocalOracle(model, policy=ApiPolicy(output="labels"))
    result = SubstituteJacobian(seeds=Xtr[:100], n_queries=800, n_estimators=2,
                                random_state=0).run(oracle)
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


@pytest.mark.parametrize("widths", [(4, 6, 3), (4, 5, 1), (4, 6, 5, 3)])
def test_averaged_networks_output_the_mean_logits(widths) -> None:
    rng = np.random.default_rng(1)
    classes = np.arange(max(2, widths[-1]))
    members = [make_relu_mlp([rng.normal(size=pair) for pair in itertools.pairwise(widths)],
                             [rng.normal(size=b) for b in widths[1:]], classes)
               for _ in range(3)]
    merged = average_mlps(members)
    X = rng.uniform(-1, 1, (200, widths[0]))
    assert merged.hidden_layer_sizes == tuple(3 * w for w in widths[1:-1])
    assert np.allclose(logits(merged, X), np.mean([logits(m, X) for m in members], axis=0))


def test_averaging_networks_copies_the_digits_victim_better() -> None:
    """The 64-32-10 Digits victim answering labels for its 1,347 training images: the
    answers fit, the networks disagree off the images, and their average agrees with
    the victim on more uniform points than one network does."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(X / 8 - 1, y, test_size=0.25, random_state=0)
    victim = MLPClassifier((32,), max_iter=1000, random_state=0).fit(Xtr, ytr)
    U = np.random.default_rng(11).uniform(-1, 1, (5000, 64))
    agree = {}
    for k in (1, 4):
        oracle = LocalOracle(victim, policy=ApiPolicy(output="labels"))
        result = SubstituteKnockoff(transfer=Xtr, n_queries=len(Xtr), hidden_layer_sizes=(32,),
                                    max_iter=1000, n_estimators=k, random_state=0).run(oracle)
        assert result.queries == 1347
        agree[k] = (_agreement(victim, result.model, Xte), _agreement(victim, result.model, U))
    assert agree[4][0] >= 0.99
    assert agree[4][1] >= agree[1][1] + 0.02  # measured: 0.483 -> 0.521


def test_n_estimators_is_checked_before_any_query(victim) -> None:
    model, Xtr, _ = victim
    oracle = LocalOracle(model, policy=ApiPolicy(output="labels"))
    with pytest.raises(ConfigurationError, match="n_estimators must be a whole number"):
        SubstituteKnockoff(transfer=Xtr, n_queries=5, n_estimators=0).run(oracle)
    assert oracle.ledger.queries == 0

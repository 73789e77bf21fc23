"""Output defences: validation at configuration time, valid and seeded answers."""

from __future__ import annotations

import numpy as np
import pytest

from stealml.exceptions import ConfigurationError
from stealml.oracles import LocalOracle
from stealml.oracles.base import fingerprint_of
from stealml.policies import ApiPolicy, gaussian_noise, reverse_sigmoid


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rounding": -1}, "rounding must be 0 to 16 decimals, not -1"),
    ({"noise": -0.1}, "noise (a standard deviation) must be >= 0, not -0.1"),
    ({"noise": float("nan")}, "noise (a standard deviation) must be >= 0"),
    ({"reverse_sigmoid": (1.0, 0.0)}, "reverse_sigmoid is (beta >= 0, gamma > 0)"),
    ({"reverse_sigmoid": (-1.0, 0.5)}, "reverse_sigmoid is (beta >= 0, gamma > 0)"),
    ({"output": "top-k", "top_k": 0}, "output top-k needs top_k >= 1"),
    ({"price": -1.0}, "price must be >= 0"),
])
def test_bad_parameters_fail_at_construction(kwargs, message) -> None:
    with pytest.raises(ConfigurationError) as err:
        ApiPolicy(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_top_k_above_the_classes_fails_when_the_oracle_is_built(softmax_logreg,
                                                                mixed_space) -> None:
    with pytest.raises(ConfigurationError, match="top_k is 4, but the model has only 3"):
        LocalOracle(softmax_logreg, mixed_space, ApiPolicy(output="top-k", top_k=4))
    LocalOracle(softmax_logreg, mixed_space, ApiPolicy(output="top-k", top_k=3))


def test_noise_needs_probabilities(mixed_space) -> None:
    from sklearn.svm import SVC

    X = mixed_space.sample_encoded(60, 0)
    svc = SVC().fit(X, X[:, 0] > 0)
    with pytest.raises(ConfigurationError, match="this model gives none"):
        LocalOracle(svc, mixed_space, ApiPolicy(noise=0.1))


def test_fingerprints_of_existing_policies_are_unchanged() -> None:
    # the describe() of the policies stealml logged before the output defences existed
    assert ApiPolicy().describe() == {"output": "probabilities", "top_k": None,
                                      "rounding": None, "incomplete": "reject", "price": 0.0}
    assert fingerprint_of(ApiPolicy(rounding=5).describe()) == fingerprint_of(
        {"output": "probabilities", "top_k": None, "rounding": 5, "incomplete": "reject",
         "price": 0.0})
    assert ApiPolicy(noise=0.1).describe()["noise_seed"] == 0
    assert "noise_seed" not in ApiPolicy(reverse_sigmoid=(1, 0.1)).describe()


def test_noise_answers_are_valid_seeded_and_repeatable(softmax_logreg, mixed_space) -> None:
    X = mixed_space.sample_encoded(300, 3)
    true = softmax_logreg.predict_proba(X)
    a = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(noise=0.2)).query(X)
    b = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(noise=0.2)).query(X[::-1])
    c = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(noise=0.2, noise_seed=1)).query(X)
    p = a.probabilities
    assert np.all(p >= 0) and np.all(p <= 1) and np.allclose(p.sum(axis=1), 1.0)
    assert np.array_equal(p, b.probabilities[::-1])  # keyed on the query, not the order
    assert not np.allclose(p, c.probabilities)
    assert 0.02 < np.mean(np.abs(p - true)) < 0.3
    # the label is the arg-max of what is shown
    assert np.array_equal(a.labels, softmax_logreg.classes_[np.argmax(p, axis=1)])


def test_zero_noise_changes_nothing(binary_logreg, mixed_space) -> None:
    X = mixed_space.sample_encoded(50, 4)
    ans = LocalOracle(binary_logreg, mixed_space, ApiPolicy(noise=0.0)).query(X)
    assert np.array_equal(ans.probabilities, binary_logreg.predict_proba(X))


def test_reverse_sigmoid_is_valid_and_bends_log_odds(binary_logreg, mixed_space) -> None:
    X = mixed_space.sample_encoded(200, 5)
    true = binary_logreg.predict_proba(X)
    served = LocalOracle(binary_logreg, mixed_space,
                         ApiPolicy(reverse_sigmoid=(1.0, 0.1))).query(X).probabilities
    assert np.all(served >= 0) and np.allclose(served.sum(axis=1), 1.0)
    assert np.array_equal(served, reverse_sigmoid(true, 1.0, 0.1))
    # the log-odds are no longer an affine function of the input: a linear fit fails
    odds = np.log(served[:, 1] / served[:, 0])
    A = np.column_stack([X, np.ones(len(X))])
    residual = odds - A @ np.linalg.lstsq(A, odds, rcond=None)[0]
    assert np.max(np.abs(residual)) > 1e-2
    # a (0.5, 0.5) answer stays, extreme ones move toward the middle
    assert reverse_sigmoid(np.array([[0.5, 0.5]]), 1.0, 0.1).tolist() == [[0.5, 0.5]]
    assert reverse_sigmoid(np.array([[0.99, 0.01]]), 1.0, 0.1)[0, 0] < 0.99


def test_composition_order_noise_then_rounding_then_top_k(softmax_logreg,
                                                          mixed_space) -> None:
    X = mixed_space.sample_encoded(40, 6)
    policy = ApiPolicy(output="top-k", top_k=1, rounding=2, noise=0.05)
    shown = LocalOracle(softmax_logreg, mixed_space, policy).query(X).probabilities
    noisy = gaussian_noise(softmax_logreg.predict_proba(X), 0.05, X, 0)
    expected = np.full_like(noisy, np.nan)
    top = np.argmax(noisy, axis=1)
    expected[np.arange(len(X)), top] = np.round(noisy[np.arange(len(X)), top], 2)
    assert np.array_equal(np.isnan(shown), np.isnan(expected))
    assert np.allclose(shown[~np.isnan(shown)], expected[~np.isnan(expected)])


def test_noise_on_a_tree_hides_leaf_identities(small_tree, mixed_space) -> None:
    from stealml.models.tree_service import TreeService

    X = mixed_space.sample_encoded(100, 7)
    plain = LocalOracle(TreeService(small_tree, mixed_space), mixed_space).query(X)
    noisy = LocalOracle(TreeService(small_tree, mixed_space), mixed_space,
                        ApiPolicy(noise=0.01, incomplete="native")).query(X)
    assert len(set(plain.ids)) <= small_tree.get_n_leaves()
    assert len(set(noisy.ids)) > 50  # every query looks like its own leaf

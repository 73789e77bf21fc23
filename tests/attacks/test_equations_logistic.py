from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.exceptions import UnsupportedModelError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace


def test_exact_with_d_plus_one_queries(binary_logreg, mixed_space) -> None:
    oracle = LocalOracle(binary_logreg, mixed_space)
    result = EquationSolving(random_state=0).run(oracle)
    assert result.queries == mixed_space.n_encoded + 1 and result.complete
    stolen = result.model
    assert type(stolen) is LogisticRegression
    assert np.allclose(stolen.coef_, binary_logreg.coef_, atol=1e-9)
    fid = fidelity(binary_logreg, stolen, mixed_space, n_uniform=10_000)
    assert fid["r_unif"] == 0.0 and fid["tv_unif"] < 1e-9


def test_exact_on_a_wide_steep_model() -> None:
    """108 features and logits up to +-60: saturated answers must not spoil the solve."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (500, 108))
    y = (X @ rng.normal(size=108) > 0).astype(int)
    target = LogisticRegression(C=100, max_iter=5000).fit(X, y)
    space = FeatureSpace.continuous(108)
    result = EquationSolving(random_state=1).run(LocalOracle(target, space))
    assert result.queries == 109
    fid = fidelity(target, result.model, space)
    assert fid["r_unif"] == 0.0 and fid["tv_unif"] < 1e-9


def _steep(bias: float, seed: int) -> tuple[LogisticRegression, FeatureSpace]:
    """A binary LR over 30 numeric columns and two categorical features (one-hot) with
    the given bias: the origin's logit."""
    space = FeatureSpace.from_dict({"features": [
        *({"name": f"x{i}", "type": "continuous", "min": 0, "max": 10} for i in range(30)),
        {"name": "a", "type": "categorical", "values": list("pqrst")},
        {"name": "b", "type": "categorical", "values": list("uvw")}]})
    rng = np.random.default_rng(seed)
    from stealml.attacks.equations import make_logistic_regression

    coef = np.r_[rng.normal(0, 1.5, 30), rng.normal(0, 3.0, 8)]
    return make_logistic_regression(coef, bias, [0, 1]), space


@pytest.mark.parametrize("bias", [0.5, 11.0, -12.5])
def test_every_query_is_an_exact_equation_even_with_little_room(bias) -> None:
    # at the origin |logit| = 12.5 leaves p = 3.7e-6, just above the 1e-6 threshold: the
    # steps start short and one at a time, and move to a more moderate point asked
    target, space = _steep(bias, 3)
    oracle = LocalOracle(target, space)
    result = EquationSolving(random_state=0).run(oracle)
    assert result.queries == space.n_encoded + 1 == oracle.ledger.queries
    fid = fidelity(target, result.model, space, n_uniform=5000)
    assert fid["r_unif"] == 0.0 and fid["tv_unif"] < 1e-11


def test_a_saturated_origin_costs_a_search_not_exactness() -> None:
    target, space = _steep(18.0, 4)  # p = 1.5e-8 at the origin: no equation there
    result = EquationSolving(random_state=0).run(LocalOracle(target, space))
    assert result.queries > space.n_encoded + 1 and result.info["exact"]
    fid = fidelity(target, result.model, space, n_uniform=5000)
    assert fid["r_unif"] == 0.0 and fid["tv_unif"] < 1e-9


def test_rounded_answers_still_give_a_close_model(binary_logreg, mixed_space) -> None:
    oracle = LocalOracle(binary_logreg, mixed_space, ApiPolicy(rounding=4))
    result = EquationSolving(n_queries=40, random_state=0).run(oracle)
    fid = fidelity(binary_logreg, result.model, mixed_space)
    assert fid["r_unif"] < 0.01 and fid["tv_unif"] < 1e-3


def test_under_budget_returns_best_effort(binary_logreg, mixed_space) -> None:
    oracle = LocalOracle(binary_logreg, mixed_space, ledger=Ledger(budget=4))
    result = EquationSolving(random_state=0).run(oracle)
    assert result.queries == 4 and not result.complete
    assert result.info["min_rank"] == 4 and result.info["solver"] == "cross-entropy fit"


def test_batches_and_string_labels(mixed_space) -> None:
    rng = np.random.default_rng(5)
    X = mixed_space.sample_encoded(300, rng)
    y = np.where(X[:, 0] - X[:, 1] > 0, "rich", "poor")
    target = LogisticRegression().fit(X, y)
    result = EquationSolving(batch_size=3, random_state=0).run(LocalOracle(target, mixed_space))
    assert list(result.model.classes_) == ["poor", "rich"]
    assert fidelity(target, result.model, mixed_space)["r_unif"] == 0.0


def test_softmax_exact_with_d_plus_one_queries(softmax_logreg, mixed_space) -> None:
    assert EquationSolving.supports(softmax_logreg)
    result = EquationSolving(random_state=0).run(LocalOracle(softmax_logreg, mixed_space))
    assert result.queries == mixed_space.n_encoded + 1 and result.complete
    fid = fidelity(softmax_logreg, result.model, mixed_space)
    assert fid["r_unif"] == 0.0 and fid["tv_unif"] < 1e-9
    assert result.model.coef_.shape == (3, 7)


def test_logreg_model_class_on_three_classes_is_refused(softmax_logreg, mixed_space) -> None:
    with pytest.raises(UnsupportedModelError, match="3"):
        EquationSolving(model_class="logreg").run(LocalOracle(softmax_logreg, mixed_space))


def test_rounded_softmax_falls_back_to_cross_entropy(softmax_logreg, mixed_space) -> None:
    oracle = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(rounding=3),
                         ledger=Ledger(budget=3 * 8 * 5))
    result = EquationSolving(random_state=0).run(oracle)
    assert result.info["solver"].startswith("cross-entropy fit") and result.queries == 120
    fid = fidelity(softmax_logreg, result.model, mixed_space)
    assert fid["r_unif"] < 0.01 and fid["tv_unif"] < 1e-3


def test_centre_of_the_rounded_answers_beats_the_nearest_consistent_model() -> None:
    from scipy.special import softmax

    from stealml.attacks.equations.logistic import (
        _design,
        center_intervals,
        fit_cross_entropy,
        fit_intervals,
    )

    errors = []
    for seed in range(6):  # 3 classes, 4 features, 60 answers rounded to 2 decimals
        rng = np.random.default_rng(seed)
        theta = rng.normal(0, 2, (3, 5))
        X, X_test = rng.uniform(-1, 1, (60, 4)), rng.uniform(-1, 1, (4000, 4))
        P = np.round(softmax(_design(X) @ theta.T, axis=1), 2)
        nearest = fit_intervals(X, P, 0.005, fit_cross_entropy(X, P))
        centre = center_intervals(X, P, 0.005, nearest)
        # still consistent with every answer's rounding
        assert np.abs(softmax(_design(X) @ centre.T, axis=1) - P).max() <= 0.005 + 1e-6
        truth = (_design(X_test) @ theta.T).argmax(axis=1)
        errors.append([np.mean((_design(X_test) @ t.T).argmax(axis=1) != truth)
                       for t in (nearest, centre)])
    nearest_error, centre_error = np.mean(errors, axis=0)
    assert centre_error < nearest_error


def test_four_decimals_and_half_as_many_queries_as_unknowns_suffice() -> None:
    # Figure 7 at alpha 0.5: blobs (3 classes, 2 features) in 5 queries; uniform points
    # of its box mostly answer 0.0000 / 1.0000, points of the exact design keep 3 digits
    from stealml.experiments.labels_only import _target

    ds, target = _target("softmax", "blobs", 0)
    oracle = LocalOracle(target, ds.space, ApiPolicy(rounding=4), ledger=Ledger(budget=5))
    result = EquationSolving(random_state=0).run(oracle)
    assert result.queries == 5
    assert fidelity(target, result.model, ds.space, ds.X_test, 2000, 0)["r_test"] == 0


def test_balanced_point_makes_every_class_equally_likely() -> None:
    from scipy.special import softmax

    from stealml.attacks.equations.queries import balanced_point

    rng = np.random.default_rng(0)
    theta = rng.normal(0, 2, (4, 7))
    theta[3, -1] = -6.0  # a rare class
    lo, hi = -3 * np.ones(6), 3 * np.ones(6)
    x = balanced_point(theta, lo, hi, np.ones(6, dtype=bool))
    assert np.all((x >= lo) & (x <= hi))
    p = softmax(theta[:, :-1] @ x + theta[:, -1])
    assert np.allclose(p, 0.25, atol=1e-6)


def test_balanced_star_pins_a_rare_class_through_rounding() -> None:
    # a class at p = 0.004 at the first star's base keeps 1% of its value through 4
    # decimals; the second star, from where the classes are balanced, keeps 0.1%
    from stealml.attacks.equations.logistic import make_logistic_regression

    errors = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        W = rng.normal(0, 2, (3, 4))
        target = make_logistic_regression(W, [0.0, 0.5, -4.5], np.arange(3))
        space = FeatureSpace.continuous(4)
        X = rng.uniform(-1, 1, (5000, 4))
        Z = X @ W.T
        Z -= Z[:, :1]
        for balanced in (True, False):
            oracle = LocalOracle(target, space, ApiPolicy(rounding=4), ledger=Ledger(budget=20))
            stolen = EquationSolving(random_state=seed, balanced=balanced).run(oracle).model
            S = X @ stolen.coef_.T + stolen.intercept_ - np.array([0.0, 0.5, -4.5])
            errors.append((balanced, float(np.abs(S - S[:, :1] - Z).max())))
    with_star = np.mean([e for b, e in errors if b])
    without = np.mean([e for b, e in errors if not b])
    assert with_star < 0.4 * without

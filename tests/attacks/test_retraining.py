"""Retraining strategies and extract-and-test on real targets behind labels-only APIs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from stealml.attacks import RetrainAdaptive, RetrainLineSearch, RetrainUniform
from stealml.attacks._selection import _balanced, select_model
from stealml.attacks.adaptive import (
    _explore,
    diagonal_rows,
    face_rows,
    farthest_points,
    margin,
)
from stealml.exceptions import ConfigurationError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

LABELS = ApiPolicy(output="labels")
STRATEGIES = [RetrainUniform, RetrainLineSearch, RetrainAdaptive]


def _oracle(target, space, budget=None) -> LocalOracle:
    return LocalOracle(target, space, LABELS, ledger=Ledger(budget=budget))


@pytest.fixture(scope="module")
def ring() -> tuple[SVC, FeatureSpace]:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 2))
    return SVC(kernel="rbf", C=10).fit(X, (X ** 2).sum(axis=1) < 0.4), FeatureSpace.continuous(2)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_steals_a_linear_model(strategy, binary_logreg, mixed_space) -> None:
    result = strategy(model="linear", random_state=0).run(
        _oracle(binary_logreg, mixed_space, budget=160))
    assert result.queries <= 160 and result.complete
    assert type(result.model) is LogisticRegression
    assert fidelity(binary_logreg, result.model, mixed_space)["r_unif"] < 0.1


def test_ours_beats_uniform_and_the_papers_adaptive(binary_logreg, mixed_space) -> None:
    def error(attack) -> float:
        result = attack.run(_oracle(binary_logreg, mixed_space, budget=80))
        return fidelity(binary_logreg, result.model, mixed_space)["r_unif"]

    seeds = range(2)
    ours = np.mean([error(RetrainAdaptive(model="linear", random_state=s))
                    for s in seeds])
    paper = np.mean([error(RetrainAdaptive(model="linear", selection="uncertainty",
                                           random_state=s)) for s in seeds])
    uniform = np.mean([error(RetrainUniform(model="linear", random_state=s)) for s in seeds])
    assert ours < paper and ours < uniform


def test_rbf_svm_gamma_by_extract_and_test(ring) -> None:
    target, space = ring
    result = RetrainAdaptive(model="rbf-svm", random_state=0).run(
        _oracle(target, space, budget=150))
    assert isinstance(result.model, SVC) and result.model.kernel == "rbf"
    assert result.info["selection"]["family"] == "rbf-svm"
    assert len(result.info["selection"]["candidates"]) > 6
    assert fidelity(target, result.model, space)["r_unif"] < 0.03


def test_extract_and_test_takes_the_widest_kernel_within_one_standard_error() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (12, 2))
    y = X[:, 0] > 0  # every width separates these: all score alike
    _, best = select_model(X, y, ("rbf-svm",), np.random.default_rng(1))
    _, wide = select_model(X, y, ("rbf-svm",), np.random.default_rng(1), widest=True)
    gamma = {k: float(k.split("gamma=")[1].rstrip(")")) for k in wide["candidates"]}
    top = max(wide["candidates"].values())
    assert wide["chosen"] != best["chosen"]
    assert gamma[wide["chosen"]] == min(g for k, g in gamma.items()
                                        if wide["candidates"][k] >= top - 1e-9)
    assert gamma[wide["chosen"]] < gamma[best["chosen"]]


def test_adaptive_prefers_wide_kernels_only_below_the_unknowns(ring) -> None:
    target, space = ring  # 3 unknowns: a budget of 2 is under them, 3 is not
    attack = RetrainAdaptive(model="rbf-svm", random_state=0)
    assert attack._widest(_oracle(target, space), 2)
    assert not attack._widest(_oracle(target, space), 3)
    assert not RetrainAdaptive(widest_below=0.0)._widest(_oracle(target, space), 2)
    with pytest.raises(ConfigurationError, match="widest_below"):
        RetrainAdaptive(model="rbf-svm", widest_below=-1.0).run(_oracle(target, space, 5))


def test_softmax_target(softmax_logreg, mixed_space) -> None:
    attack = RetrainAdaptive(model="linear", random_state=0)
    assert attack.n_unknowns(mixed_space.n_encoded, 3) == 24
    result = attack.run(_oracle(softmax_logreg, mixed_space, budget=240))
    assert list(result.model.classes_) == [0, 1, 2]
    assert fidelity(softmax_logreg, result.model, mixed_space)["r_unif"] < 0.05


def test_mlp_local_model_and_its_unknowns(ring) -> None:
    target, space = ring
    attack = RetrainUniform(model="mlp", hidden_units=5, random_state=0)
    assert RetrainUniform(model="mlp").n_unknowns(105, 5) == 2225  # the paper's Adult-Race
    result = attack.run(_oracle(target, space, budget=300))
    assert isinstance(result.model, MLPClassifier)


def test_extract_and_test_picks_the_family() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (300, 3))
    _, linear = select_model(X, X @ [1.0, -1.0, 0.5] > 0, ("linear", "rbf-svm"), rng)
    _, ring = select_model(X, (X ** 2).sum(axis=1) < 0.8, ("linear", "rbf-svm"), rng)
    assert linear["family"] == "linear" and ring["family"] == "rbf-svm"
    assert ring["holdout_agreement"] > 0.9


def test_plan_budget_and_partial_result(binary_logreg, mixed_space) -> None:
    oracle = _oracle(binary_logreg, mixed_space, budget=30)
    result = RetrainLineSearch(n_queries=100, random_state=0).run(oracle)
    assert result.queries == 30 and not result.complete
    assert len(result.model.predict(mixed_space.sample_encoded(5, 0))) == 5
    free = _oracle(binary_logreg, mixed_space)
    assert RetrainUniform(model="linear", random_state=0).run(free).queries == 80  # 10(d+1)


def test_one_class_answers_give_a_constant_model(mixed_space) -> None:
    X = mixed_space.sample_encoded(50, 0)
    target = LogisticRegression().fit(X, np.r_[np.ones(49), 0].astype(int))
    target.intercept_ = np.array([100.0])
    result = RetrainAdaptive(random_state=0).run(_oracle(target, mixed_space, budget=40))
    assert set(result.model.predict(X)) == {1}


def test_bad_options(binary_logreg, mixed_space) -> None:
    oracle = _oracle(binary_logreg, mixed_space, budget=50)
    with pytest.raises(ConfigurationError, match="selection"):
        RetrainAdaptive(selection="random").run(oracle)
    with pytest.raises(ConfigurationError, match="model must be"):
        RetrainUniform(model="boosting").run(oracle)
    with pytest.raises(ConfigurationError, match="n_queries"):
        RetrainUniform(n_queries=0).run(oracle)
    assert oracle.ledger.queries == 0


def test_helpers() -> None:
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [0.0, 0.1]])
    assert set(farthest_points(X, 2, np.random.default_rng(0)).tolist()) >= {2}
    model = LogisticRegression().fit([[-1.0], [1.0]], [0, 1])
    assert margin(model, np.array([[0.0], [1.0]]))[0] < margin(model, np.array([[1.0]]))[0]


def test_extract_and_test_counts_a_rare_class_as_much_as_a_common_one() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (150, 2))
    y = ((X - 0.6) ** 2).sum(axis=1) < 0.08  # a small disc: about 5% of the answers
    assert 3 <= y.sum() <= 15
    model, report = select_model(X, y, ("rbf-svm",), rng)
    # 150 answers: 5-fold, every answer held out once; the score is per-class agreement
    assert report["holdout_agreement"] == max(report["candidates"].values())
    assert model.predict(np.array([[0.6, 0.6]]))[0]
    assert _balanced(np.array([True, True, True, False]), np.array(list("aaab"))) == 0.5


def test_mixed_selection_spends_the_budget_half_on_each_rule(ring) -> None:
    target, space = ring
    result = RetrainAdaptive(model="rbf-svm", selection="mixed", random_state=0).run(
        _oracle(target, space, budget=120))
    assert result.queries == 120 and result.info["selection_rule"] == "mixed"
    assert fidelity(target, result.model, space)["r_unif"] < 0.05


def test_ours_explores_uniformly_until_a_second_class_answers(mixed_space) -> None:
    # a target that labels about 3% of the space positive: near the only class seen,
    # nothing new is found; uniform rows find the rare class, then its boundary
    X = mixed_space.sample_encoded(2000, 0)
    score = X[:, 0] + X[:, 1]
    target = LogisticRegression(C=1e3).fit(X, (score > np.quantile(score, 0.97)).astype(int))
    found = [1 in RetrainAdaptive(model="linear", random_state=s).run(
        _oracle(target, mixed_space, budget=150)).model.predict(X) for s in range(3)]
    assert all(found)


def test_diagonal_rows_are_valid_rows_whose_features_move_together(mixed_space) -> None:
    X = diagonal_rows(mixed_space, 500, np.random.default_rng(0))
    raw = mixed_space.decode(X)
    assert np.allclose(mixed_space.encode(raw, allow_missing=False), X)  # valid rows
    assert np.all(np.abs(X) <= 1) and np.all(raw[:, 0].astype(float) % 1 == 0)
    assert np.corrcoef(X[:, 0], X[:, 1])[0, 1] > 0.8  # age and hours at one level
    onehot = X[:, 2:]
    assert set(np.unique(onehot)) <= {0.0, 1.0} and np.all(onehot.sum(axis=1) == 2)


def test_face_rows_are_valid_rows_with_half_their_numbers_at_an_end(mixed_space) -> None:
    X = face_rows(mixed_space, 2000, np.random.default_rng(0))
    assert np.allclose(mixed_space.encode(mixed_space.decode(X), allow_missing=False), X)
    ends = np.abs(X[:, :2]) == 1
    assert 0.45 < ends.mean() < 0.6 and np.all(X[:, 2:].sum(axis=1) == 2)


@pytest.fixture(scope="module")
def corner_class() -> tuple[FeatureSpace, LogisticRegression, np.ndarray]:
    """A class holding about 0.1% of a 9-feature box, all of it where every feature is
    low: the space, the target and 200 rows of the corner."""
    space = FeatureSpace.continuous(9)
    X = space.sample_encoded(4000, 0)
    target = LogisticRegression(C=1e3).fit(
        np.vstack([X, -np.ones((40, 9))]), np.r_[X.mean(axis=1) < -0.6, np.ones(40, bool)])
    corner = np.clip(-0.9 + 0.1 * np.random.default_rng(1).normal(size=(200, 9)), -1, 1)
    assert target.predict(corner).all() and target.predict(X).mean() < 0.005
    return space, target, corner


def test_ours_finds_a_class_in_the_corner_where_every_feature_is_low(corner_class) -> None:
    # uniform rows would need about a thousand queries to meet the corner class once;
    # the one-class rounds' rows near the diagonal meet it within a few rounds
    space, target, corner = corner_class
    for seed in range(2):
        model = RetrainAdaptive(model="linear", random_state=seed).run(
            _oracle(target, space, budget=60)).model
        assert model.predict(corner).mean() > 0.9


def test_farthest_points_stay_away_from_the_points_asked() -> None:
    assert np.zeros((3, 2))[farthest_points(np.zeros((3, 2)), 0,
                                            np.random.default_rng(0))].shape == (0, 2)
    X = np.array([[0.0, 0.0], [0.05, 0.0], [1.0, 1.0], [0.9, 1.0], [-1.0, 1.0]])
    asked = np.array([[0.0, 0.02], [1.0, 0.98]])
    assert farthest_points(X, 1, np.random.default_rng(0), asked).tolist() == [4]
    assert sorted(farthest_points(X, 3, np.random.default_rng(0), asked).tolist()) in (
        [0, 2, 4], [0, 3, 4], [1, 2, 4], [1, 3, 4])


def test_ours_rounds_do_not_return_to_one_stretch_of_the_boundary() -> None:
    # a wiggly boundary (two moons' RBF SVM, 60 queries): while the local model is wrong
    # its boundary moves little between rounds; queries far from all those asked before
    # keep finding where it is wrong, so ours beats the paper's rule here
    from sklearn.datasets import make_moons

    X, y = make_moons(600, noise=0.1, random_state=0)
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0)) * 2 - 1
    target, space = SVC(gamma=8.0, C=0.5).fit(X, y), FeatureSpace.continuous(2)

    def error(selection: str, seed: int) -> float:
        model = RetrainAdaptive(model="rbf-svm", selection=selection, random_state=seed).run(
            _oracle(target, space, budget=60)).model
        return float(np.mean(model.predict(X) != target.predict(X)))

    ours = np.mean([error("boundary", s) for s in range(3)])
    paper = np.mean([error("uncertainty", s) for s in range(3)])
    assert ours < paper and ours < 0.01


def test_select_model_with_one_answer_fits_a_constant_model() -> None:
    """One answer leaves nothing to hold out (a retraining attack blocked after its first
    query): the first candidate is fitted on it, a constant model, instead of an
    IndexError from an empty training split."""
    X, y = np.array([[0.2, -0.4]]), np.array(["malignant"])
    model, report = select_model(X, y, ("linear", "rbf-svm"), np.random.default_rng(0))
    assert model.predict(np.zeros((3, 2))).tolist() == ["malignant"] * 3
    assert report["family"] == "linear" and report["holdout_agreement"] is None


def test_rounds_of_one_query_explore_near_the_diagonal_too(corner_class) -> None:
    # the corner class with 20 queries: 10 uniform rows, then ten rounds of one query
    # each; each exploring round's row is near the diagonal half the time (it was always
    # the farthest pool row: the corner stayed unseen)
    space, target, corner = corner_class
    found = [RetrainAdaptive(model="linear", random_state=seed).run(
        _oracle(target, space, budget=20)).model.predict(corner).mean() > 0.5
        for seed in range(10)]
    assert sum(found) >= 8  # 10 of 10 here; 0 of 10 before


def test_a_one_row_exploring_round_is_a_pool_row_unless_the_api_has_two_classes() -> None:
    space = FeatureSpace.continuous(9)
    pool, asked = space.sample_encoded(64, 0), space.sample_encoded(5, 1)

    def in_pool(odd_diagonal: bool, seed: int) -> bool:
        row = _explore(space, pool, 1, np.random.default_rng(seed), asked, odd_diagonal)
        return bool((np.abs(pool - row).max(axis=1) == 0).any())

    assert all(in_pool(False, s) for s in range(20))  # more classes: as before
    assert 5 <= sum(in_pool(True, s) for s in range(20)) <= 15  # two: either, at random

"""Lowd-Meek on real linear and polynomial-kernel targets, behind a labels-only API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from stealml.attacks import LowdMeek
from stealml.cli import main
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.modelio import save_model
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

LABELS = ApiPolicy(output="labels")


def _oracle(target, space, budget=None) -> LocalOracle:
    return LocalOracle(target, space, LABELS, ledger=Ledger(budget=budget))


def test_logistic_regression_is_exact(binary_logreg, mixed_space) -> None:
    result = LowdMeek(random_state=0).run(_oracle(binary_logreg, mixed_space))
    assert result.complete and result.info["degree"] == 1
    stolen = result.model
    assert type(stolen) is LogisticRegression
    w = np.r_[stolen.coef_[0], stolen.intercept_]
    t = np.r_[binary_logreg.coef_[0], binary_logreg.intercept_]
    assert abs(w @ t) / np.linalg.norm(w) / np.linalg.norm(t) > 1 - 1e-10
    assert fidelity(binary_logreg, stolen, mixed_space)["r_unif"] == 0.0
    # d + 1 + 3 line searches of about log2(sqrt(d) * 2 / 1e-7) = 26 queries, and a pool
    assert result.queries < 11 * 27 + 20


def test_linear_svm_with_string_labels_in_batches() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (300, 6))
    y = np.where(X @ rng.normal(size=6) > 0.3, "spam", "ham")
    target = SVC(kernel="linear", C=10).fit(X, y)
    space = FeatureSpace.continuous(6)
    result = LowdMeek(batch_size=7, random_state=1).run(_oracle(target, space))
    assert result.complete and list(result.model.classes_) == ["ham", "spam"]
    assert fidelity(target, result.model, space)["r_unif"] == 0.0


def test_polynomial_kernel_svm_through_the_feature_map() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 3))
    target = SVC(kernel="poly", degree=2, coef0=1.0, C=10).fit(X, X[:, 0] ** 2 + X[:, 1] > 0.3)
    space = FeatureSpace.continuous(3)
    result = LowdMeek(random_state=0).run(_oracle(target, space))
    assert result.complete and result.info["degree"] == 2 and result.info["unknowns"] == 10
    assert isinstance(result.model, Pipeline)
    assert fidelity(target, result.model, space)["r_unif"] == 0.0


def test_wrong_degree_is_detected_not_passed_off(mixed_space) -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 3))
    target = SVC(kernel="poly", degree=2, coef0=1.0, C=10).fit(X, X[:, 0] ** 2 + X[:, 1] > 0.3)
    result = LowdMeek(degree=1, random_state=0).run(_oracle(target, FeatureSpace.continuous(3)))
    assert not result.complete
    assert "no surface of degree <= 1" in result.info["message"]


def test_small_budget_says_so_and_keeps_the_best_model(binary_logreg, mixed_space) -> None:
    result = LowdMeek(random_state=0).run(_oracle(binary_logreg, mixed_space, budget=120))
    assert result.queries == 120 and not result.complete
    assert "budget leaves 120" in result.info["warning"]
    assert "budget ran out" in result.info["message"]
    fid = fidelity(binary_logreg, result.model, mixed_space)
    assert 0 < fid["r_unif"] < 0.2  # a retrained model, not a constant one


def test_constant_target_is_reported(mixed_space) -> None:
    X = mixed_space.sample_encoded(50, 0)
    target = LogisticRegression().fit(X, np.r_[np.ones(49), 0].astype(int))
    target.intercept_ = np.array([100.0])
    result = LowdMeek(max_search=40, random_state=0).run(_oracle(target, mixed_space))
    assert not result.complete and result.queries == 40
    assert "everywhere it was asked" in result.info["message"]
    assert "answers 1 everywhere" in result.info["message"]  # not np.int64(1)
    assert set(result.model.predict(X)) == {1}


def test_bad_input(softmax_logreg, binary_logreg, mixed_space) -> None:
    assert not LowdMeek.supports(softmax_logreg) and LowdMeek.supports(binary_logreg)
    assert not LowdMeek.supports(SVC(kernel="rbf").fit([[0.0], [1.0]], [0, 1]))
    with pytest.raises(UnsupportedModelError, match="3 classes"):
        LowdMeek().run(_oracle(softmax_logreg, mixed_space))
    with pytest.raises(ConfigurationError, match="precision"):
        LowdMeek(precision=0).run(_oracle(binary_logreg, mixed_space))
    assert LowdMeek(degree=2).n_unknowns(7, 2) == 36


def test_cli_extracts_from_labels(binary_logreg, mixed_space, tmp_path) -> None:
    path = tmp_path / "target.skops"
    save_model(path, binary_logreg, mixed_space)
    runner = CliRunner()
    base = ["extract", "--target", str(path), "--attack", "lowd-meek", "--json"]
    refused = runner.invoke(main, base)
    assert refused.exit_code == 1 and "--output labels" in refused.output
    run = runner.invoke(main, [*base, "--output", "labels"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.output)
    assert report["complete"] and report["fidelity"]["r_unif"] == 0.0

"""HttpOracle and OipOracle against a real service on loopback."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.exceptions import InvalidInputError, OracleError, OracleUnavailableError
from stealml.ledger import Ledger
from stealml.modelio import save_model
from stealml.oracles import HttpOracle, LocalOracle, OipOracle, Oracle, RetryPolicy
from stealml.server import load_settings, running
from stealml.server.store import PredictionLog


def test_the_metadata_is_all_an_attacker_needs(service, api_key, numeric_space) -> None:
    oracle = HttpOracle(service, api_key=api_key)
    assert isinstance(oracle, Oracle)
    assert oracle.space == numeric_space and list(oracle.classes) == [0, 1]
    assert oracle.policy.price == 0.0001 and oracle.reveals == {"labels", "probabilities"}


def test_equation_solving_over_http_is_exact(service, api_key, target, make_settings) -> None:
    model, _ = target
    oracle = HttpOracle(service, "lr", api_key=api_key, ledger=Ledger(budget=100))
    result = EquationSolving(random_state=0).run(oracle)
    assert result.complete
    np.testing.assert_allclose(result.model.coef_, model.coef_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.model.intercept_, model.intercept_, rtol=0, atol=1e-9)
    local = EquationSolving(random_state=0).run(LocalOracle(model, oracle.space))
    assert result.queries == local.queries
    assert result.cost == pytest.approx(0.0001 * result.queries)
    served = PredictionLog(make_settings().log).usage("attacker")
    assert served == result.queries  # what the service charged is what the ledger paid


def test_open_inference_protocol_oracle_is_exact(service, api_key, target) -> None:
    model, _ = target
    oracle = OipOracle(service, "lr", api_key=api_key, price=0.0001)
    result = EquationSolving(random_state=0).run(oracle)
    np.testing.assert_allclose(result.model.coef_, model.coef_, rtol=0, atol=1e-9)
    assert result.model.classes_.tolist() == [0, 1]


def test_queries_must_be_valid_encodings(tmp_path, mixed_space, binary_logreg,
                                         api_key) -> None:
    path = tmp_path / "onehot.skops"
    save_model(path, binary_logreg, mixed_space)
    settings = load_settings(None, models=[{"name": "m", "path": path,
                                            "incomplete": "zeros"}])
    with running(settings) as url:
        oracle = HttpOracle(url)
        assert "incomplete" in oracle.reveals
        X = mixed_space.sample_encoded(3, 0)
        expect = binary_logreg.predict_proba(X)
        np.testing.assert_allclose(oracle.query(X).probabilities, expect, rtol=1e-12)
        partial = mixed_space.encode([[40, None, "F", None]])
        amazon = binary_logreg.predict_proba(np.nan_to_num(partial))
        np.testing.assert_allclose(oracle.query(partial).probabilities, amazon, rtol=1e-12)
        X[0, 2:4] = 0.5
        with pytest.raises(InvalidInputError, match=r"column 'sex=F' = 0\.5"):
            oracle.query(X)
        assert oracle.ledger.queries == 4


def test_refusals_are_clear_errors(make_settings, api_key) -> None:
    with running(make_settings(quota=3)) as url:
        with pytest.raises(OracleError, match="HTTP 401"):
            HttpOracle(url, "lr").query(np.zeros((1, 4)))
        with pytest.raises(OracleError, match="HTTP 403"):
            HttpOracle(url, "lr", api_key="sk-not-a-key").query(np.zeros((1, 4)))
        oracle = HttpOracle(url, "lr", api_key=api_key)
        with pytest.raises(OracleError, match="quota spent"):
            oracle.query(np.linspace(-1, 1, 20).reshape(5, 4))
        assert oracle.client.retries == 0 and oracle.ledger.queries == 0
        with pytest.raises(OracleError, match="no model 'nope'"):
            HttpOracle(url, "nope")
    with pytest.raises(OracleUnavailableError, match="did not answer after 2 tries"):
        HttpOracle(url, retry=RetryPolicy(tries=2, backoff=0.0), timeout=0.5)


def test_top_k_labels_and_regression_answers(tmp_path, mixed_space, softmax_logreg) -> None:
    from sklearn.tree import DecisionTreeRegressor

    X = mixed_space.sample_encoded(40, 2)
    reg = DecisionTreeRegressor(max_depth=4).fit(X, X[:, 1] * 3)
    save_model(tmp_path / "soft.skops", softmax_logreg, mixed_space)
    save_model(tmp_path / "reg.skops", reg, mixed_space)
    settings = load_settings(None, models=[
        {"name": "top2", "path": tmp_path / "soft.skops", "output": "top-k", "top_k": 2},
        {"name": "labels", "path": tmp_path / "soft.skops", "output": "labels"},
        {"name": "reg", "path": tmp_path / "reg.skops", "rounding": 3}])
    with running(settings) as url:
        top = HttpOracle(url, "top2").query(X)
        labels = HttpOracle(url, "labels")
        answers = labels.query(X)
        values = HttpOracle(url, "reg").query(X)
        # the Open Inference Protocol: the metadata's outputs say there are no
        # probabilities, and the published task that the answers are values
        oip_labels, oip_reg = OipOracle(url, "labels"), OipOracle(url, "reg")
        oip_answers, oip_values = oip_labels.query(X), oip_reg.query(X)
    assert oip_labels.reveals == {"labels"} and oip_answers.probabilities is None
    assert np.array_equal(oip_answers.labels, softmax_logreg.predict(X))
    assert oip_reg.reveals == {"labels", "values"} and oip_reg.classes is None
    assert np.array_equal(oip_values.values, np.round(reg.predict(X), 3))
    assert top.probabilities is not None and (np.isnan(top.probabilities).sum(axis=1) == 1).all()
    assert labels.reveals == {"labels"} and answers.probabilities is None
    assert np.array_equal(answers.labels, softmax_logreg.predict(X))
    assert values.values is not None
    assert np.array_equal(values.values, np.round(reg.predict(X), 3))


def test_extracting_a_served_regressor(tmp_path, mixed_space) -> None:
    """Over both protocols a served regressor is measured by its values' errors, and an
    attack that learns classes refuses it in one line."""
    from click.testing import CliRunner
    from sklearn.tree import DecisionTreeRegressor

    from stealml.cli import main

    X = mixed_space.sample_encoded(200, 4)
    reg = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, X[:, 1] * 3 + 1)
    save_model(tmp_path / "reg.skops", reg, mixed_space)
    settings = load_settings(None, models=[{"name": "reg", "path": tmp_path / "reg.skops"}])
    with running(settings) as url:
        def extract(*args: str) -> Any:
            return CliRunner().invoke(main, ["extract", "--url", url, "--model", "reg",
                                             "--eval-queries", "200", "--json", *args])
        paths = extract("--attack", "path-finding", "--budget", "2000")
        assessed = CliRunner().invoke(main, [
            "assess", "--url", url, "--model", "reg", "--attack", "retrain-uniform",
            "--attack", "path-finding", "--budget-dollars", "0", "--max-queries", "300",
            "--eval-queries", "100", "--out", str(tmp_path / "report"), "--json"])
        refused = [extract("--attack", "retrain-uniform", "--budget", "50", *p)
                   for p in ([], ["--protocol", "v2"])]
    assert paths.exit_code == 0, paths.output
    fid = json.loads(paths.output)["fidelity"]
    assert fid["mae_unif"] == pytest.approx(0, abs=1e-9) and "r_unif" not in fid
    assert assessed.exit_code == 0, assessed.output
    report = json.loads(assessed.output)
    assert report["skipped"]["retrain-uniform"] == ("learns class labels; the API answers "
                                                    "regression values")
    best = report["attacks"][0]["best"]  # path-finding: the share of values reproduced
    assert report["attacks"][0]["attack"] == "path-finding" and 0 < best["fidelity"] <= 1
    for run in refused:
        assert run.exit_code == 1
        assert run.output.strip() == ("error: attack 'retrain-uniform' learns class labels, "
                                      "but the API answers regression values")


@pytest.mark.parametrize("classes", [2, 3])
def test_equation_solving_over_http_sends_valid_rows_of_a_categorical_space(
        tmp_path, mixed_space, classes) -> None:
    """An API of named raw values answers no one-hot column between 0 and 1: equation
    solving switches categories instead of stepping along their columns, and every
    valid row gets the target's answer (its solution is exact up to the per-feature
    constant that valid rows cannot see)."""
    from stealml.attacks.equations.queries import row_rank

    rng = np.random.default_rng(0)
    X = mixed_space.sample_encoded(600, rng)
    w = np.array([1.5, -2.0, 0.7, -0.7, 0.3, 1.0, -1.2])
    y = np.digitize(X @ w, [-0.5, 0.5]) if classes == 3 else (X @ w > 0).astype(int)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    save_model(tmp_path / "m.skops", model, mixed_space)
    with running(load_settings(None, models=[{"name": "m", "path": tmp_path / "m.skops"},
                                             {"name": "r", "path": tmp_path / "m.skops",
                                              "rounding": 3}])) as url:
        oracle = HttpOracle(url, "m")
        assert oracle.raw_rows
        result = EquationSolving(random_state=0).run(oracle)
        rounded = EquationSolving(random_state=0).run(HttpOracle(url, "r",
                                                                 ledger=Ledger(budget=200)))
    assert result.complete and result.info["valid_rows"]
    assert result.queries == row_rank(mixed_space) == 6  # age, hours, F/M, 3 kinds, bias
    test = mixed_space.sample_encoded(2000, 1)
    np.testing.assert_allclose(result.model.predict_proba(test), model.predict_proba(test),
                               rtol=0, atol=1e-9)
    assert rounded.queries == 200
    assert np.mean(rounded.model.predict(test) == model.predict(test)) > 0.99


def test_labels_only_attacks_over_http_on_a_categorical_space(tmp_path, mixed_space,
                                                              binary_logreg) -> None:
    """Jacobian augmentation switches categories (its points stay valid rows); Lowd-Meek
    searches along numeric columns between rows of the same categories and switches
    categories on the segments found (exact on every valid row);
    functionally-equivalent extraction, whose lines move one-hot columns between 0 and
    1, is refused in one line;
    `--output labels` reads a service's labels only, and `--rounding` is refused."""
    from dataclasses import replace

    from stealml.attacks import FunctionallyEquivalent, LowdMeek, SubstituteJacobian
    from stealml.exceptions import ConfigurationError, UnsupportedModelError
    from stealml.experiments.remote import run_remote
    from stealml.experiments.runner import ExtractionConfig

    save_model(tmp_path / "m.skops", binary_logreg, mixed_space)
    with running(load_settings(None, models=[{"name": "m", "path": tmp_path / "m.skops",
                                              "output": "labels"}])) as url:
        oracle = HttpOracle(url, ledger=Ledger(budget=150))
        result = SubstituteJacobian(n_seeds=50, max_iter=200, n_estimators=1,
                                    random_state=0).run(oracle)
        assert result.queries == 150 and result.info["rounds"] >= 2
        lowd = LowdMeek(random_state=0).run(HttpOracle(url))  # between rows of one
        # category combination, then switching each category on found segments
        assert lowd.complete and lowd.info["degree"] == 1
        test = mixed_space.sample_encoded(5000, 7)
        assert np.array_equal(lowd.model.predict(test), binary_logreg.predict(test))
        with pytest.raises(UnsupportedModelError, match="use degree 1"):
            LowdMeek(degree=2, random_state=0).run(HttpOracle(url))

    with running(load_settings(None, models=[{"name": "m",
                                              "path": tmp_path / "m.skops"}])) as url:
        config = ExtractionConfig(target=url, protocol="stealml", attack="retrain-uniform",
                                  output="labels", budget=40, eval_queries=100)
        with pytest.raises(UnsupportedModelError, match="this API takes raw rows"):
            FunctionallyEquivalent(random_state=0).run(HttpOracle(url))
        result, report = run_remote(config)
        assert result.queries == 40 and report["fidelity"]["r_unif"] < 0.3
        with pytest.raises(ConfigurationError, match="attack 'equation-solving' reads what"):
            run_remote(replace(config, attack="equation-solving"))
        with pytest.raises(ConfigurationError, match="--rounding configure the API"):
            run_remote(replace(config, rounding=2))


def test_a_models_address_given_as_the_base_url_is_explained(service, api_key) -> None:
    with pytest.raises(OracleError, match=r"is a model's address: give the service's base "
                                          r"URL \(http://127\.0\.0\.1:\d+\) and the model's "
                                          r"name \(lr\)"):
        HttpOracle(f"{service}/models/lr", api_key=api_key)


def test_kernel_equation_solving_over_http_draws_valid_rows(tmp_path, mixed_space) -> None:
    """A kernel logistic regression on a space with categorical features, behind an API
    of raw rows: the attack's uniform draws are valid rows, and it still fits the
    target on them."""
    from stealml.models.kernel_logreg import KernelLogisticRegression

    rng = np.random.default_rng(0)
    X = mixed_space.sample_encoded(300, rng)
    y = (X[:, 0] + X[:, 1] ** 2 + X[:, 2] > 0.5).astype(int)
    model = KernelLogisticRegression(gamma=1.0, n_representers=3, C=100.0,
                                     random_state=0).fit(X, y)
    save_model(tmp_path / "k.skops", model, mixed_space)
    with running(load_settings(None, models=[{"name": "k", "path": tmp_path / "k.skops"}])) \
            as url:
        result = EquationSolving(model_class="kernel-logreg", n_representers=3, gamma=1.0,
                                 restarts=10, random_state=0).run(HttpOracle(url))
    test = mixed_space.sample_encoded(2000, 5)
    assert np.mean(result.model.predict(test) == model.predict(test)) > 0.99

"""PRADA and the out-of-distribution monitor, offline on a local oracle."""

from __future__ import annotations

import numpy as np
import pytest

from stealml.attacks import PathFinding, RetrainUniform
from stealml.defences import Monitor, OutOfDistribution, Prada
from stealml.exceptions import ConfigurationError, KeyBlocked
from stealml.experiments.defence_targets import build_target
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy


@pytest.fixture(scope="module")
def tree_target():
    return build_target("german-credit tree")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Prada(delta=1.5), "PRADA's delta must be between 0 and 1"),
    (lambda: Prada(min_samples=2), "min_samples must be a whole number >= 3"),
    (lambda: OutOfDistribution(np.zeros((3, 2))), "at least 10 finite reference rows"),
    (lambda: OutOfDistribution(np.zeros((20, 2)), alpha=0), "alpha must be between 0 and 1"),
    (lambda: Monitor([]), "needs at least one detector"),
    (lambda: Monitor([Prada()], response="shout"), "response must be one of"),  # type: ignore[arg-type]
    (lambda: Monitor([Prada()], response="noise", noise=-1), "must be > 0"),
])
def test_bad_monitor_settings_fail_at_construction(make, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def _attack_oracle(target, monitor, budget=None):
    return LocalOracle(target.served, target.space, ApiPolicy(incomplete="native"),
                       ledger=Ledger(budget=budget), monitor=monitor, client="mallory")


def test_prada_flags_path_finding_but_not_honest_traffic(tree_target) -> None:
    monitor = Monitor([Prada(delta=0.95)], response="log")
    result = PathFinding(random_state=0, batch_size=10).run(_attack_oracle(tree_target,
                                                                           monitor))
    flag = monitor.flag("mallory")
    assert flag is not None and flag["detector"] == "prada"
    assert 100 <= flag["at_query"] < result.queries and flag["statistic"] < 0.95
    honest = Monitor([Prada(delta=0.95)], response="log")
    oracle = LocalOracle(tree_target.served, tree_target.space,
                         ApiPolicy(incomplete="native"), monitor=honest, client="alice")
    rows = tree_target.honest[:result.queries]
    for start in range(0, len(rows), 10):
        oracle.query(rows[start:start + 10])
    record = honest.summary("alice")["prada"]
    assert record["queries"] > 500 and record["flagged_at"] is None
    assert record["min_statistic"] > 0.95


def test_block_stops_the_attack_at_the_flag(tree_target) -> None:
    monitor = Monitor([Prada(delta=0.95)], response="block")
    oracle = _attack_oracle(tree_target, monitor)
    result = PathFinding(random_state=0).run(oracle)  # one big batch at a time
    at = monitor.flag("mallory")["at_query"]
    assert result.queries == at and not result.complete  # row-precise: nothing after it
    fid = fidelity(tree_target.model, result.model, tree_target.space, tree_target.X_test,
                   n_uniform=200)
    assert fid["r_test"] is not None
    with pytest.raises(KeyBlocked, match="the prada monitor flagged it"):
        oracle.query(tree_target.X_test[:1] + 0.5)


def test_labels_and_noise_responses_change_answers_after_the_flag(tree_target) -> None:
    X = np.linspace(-1, 1, 150)[:, None] * np.ones((1, tree_target.space.n_encoded))
    for response in ("labels", "noise"):
        monitor = Monitor([Prada(delta=0.9, min_samples=20)], response=response,
                          noise=0.05)
        oracle = LocalOracle(tree_target.model, tree_target.space, monitor=monitor,
                             client="mallory")
        ans = oracle.query(X)
        at = monitor.flag("mallory")["at_query"]
        assert 20 <= at < 150
        before, after = ans.probabilities[:at], ans.probabilities[at:]
        assert np.array_equal(before, tree_target.model.predict_proba(X[:at]))
        if response == "labels":
            assert np.isnan(after).all()
        else:
            assert not np.isnan(after).any() and np.allclose(after.sum(axis=1), 1.0)
            assert not np.allclose(after, tree_target.model.predict_proba(X[at:]))


def test_ood_flags_uniform_retraining_within_a_few_queries(tree_target) -> None:
    monitor = Monitor([OutOfDistribution(tree_target.reference)], response="log")
    oracle = LocalOracle(tree_target.model, tree_target.space, ApiPolicy(output="labels"),
                         ledger=Ledger(budget=300), monitor=monitor, client="mallory")
    RetrainUniform(random_state=0, batch_size=10).run(oracle)
    assert monitor.flag("mallory")["at_query"] <= 10
    honest = Monitor([OutOfDistribution(tree_target.reference)], response="log")
    honest.observe("alice", tree_target.honest, tree_target.model.predict(
        tree_target.honest))
    assert honest.flag("alice") is None

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.exceptions import ConfigurationError, LedgerError, QueryBudgetExceeded
from stealml.ledger import Ledger, query_key
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy


def _oracle(model: LogisticRegression, **kw: object) -> LocalOracle:
    return LocalOracle(model, ledger=Ledger(**kw), policy=ApiPolicy(price=0.5))  # type: ignore[arg-type]


def test_counts_and_prices(binary_logreg: LogisticRegression) -> None:
    oracle = _oracle(binary_logreg)
    X = np.random.default_rng(0).uniform(-1, 1, (5, 7))
    oracle.query(X)
    assert oracle.ledger.queries == 5 and oracle.ledger.cost == pytest.approx(2.5)


def test_repeated_query_is_not_paid_twice(binary_logreg: LogisticRegression) -> None:
    oracle = _oracle(binary_logreg)
    X = np.random.default_rng(0).uniform(-1, 1, (3, 7))
    first = oracle.query(X)
    again = oracle.query(np.vstack([X, X[:1]]))
    assert oracle.ledger.queries == 3 and oracle.ledger.cached == 4
    assert np.array_equal(again.probabilities[:3], first.probabilities)
    # duplicates inside one batch are paid once
    oracle.query(np.zeros((4, 7)))
    assert oracle.ledger.queries == 4


def test_budget_refuses_whole_batch_before_paying(binary_logreg: LogisticRegression) -> None:
    oracle = _oracle(binary_logreg, budget=4)
    rng = np.random.default_rng(1)
    oracle.query(rng.uniform(-1, 1, (3, 7)))
    with pytest.raises(QueryBudgetExceeded) as info:
        oracle.query(rng.uniform(-1, 1, (2, 7)))
    assert info.value.remaining == 1 and oracle.ledger.queries == 3
    oracle.query(rng.uniform(-1, 1, (1, 7)))
    assert oracle.ledger.remaining == 0


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_bad_budget(budget: object) -> None:
    with pytest.raises(ConfigurationError):
        Ledger(budget=budget)  # type: ignore[arg-type]


def test_log_replays_answers_of_an_earlier_run(tmp_path, binary_logreg) -> None:
    log = tmp_path / "q.sqlite"
    X = np.random.default_rng(2).uniform(-1, 1, (6, 7))
    first = _oracle(binary_logreg, log=log)
    a = first.query(X)
    first.ledger.close()
    second = _oracle(binary_logreg, log=log)
    b = second.query(X[::-1])
    assert second.ledger.queries == 0 and second.ledger.replayed == 6
    assert np.array_equal(a.probabilities, b.probabilities[::-1])
    # the log keeps every paid query exactly once, with its answer
    with sqlite3.connect(log) as conn:
        assert conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 6


def test_log_is_namespaced_by_target_and_policy(tmp_path, binary_logreg) -> None:
    log = tmp_path / "q.sqlite"
    X = np.random.default_rng(3).uniform(-1, 1, (4, 7))
    _oracle(binary_logreg, log=log).query(X)
    rounded = LocalOracle(binary_logreg, policy=ApiPolicy(rounding=2), ledger=Ledger(log=log))
    rounded.query(X)
    assert rounded.ledger.queries == 4 and rounded.ledger.replayed == 0


def test_not_a_log(tmp_path, binary_logreg) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LedgerError, match="not a usable stealml query log"):
        _oracle(binary_logreg, log=bad).query(np.zeros((1, 7)))


def test_query_key_treats_signed_zero_and_nan_alike() -> None:
    assert query_key(np.array([0.0, np.nan])) == query_key(np.array([-0.0, -np.nan]))
    assert query_key(np.array([0.0, 1.0])) != query_key(np.array([1.0, 0.0]))

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from stealml.attacks import EquationSolving
from stealml.datasets import load
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle


@pytest.mark.parametrize("name", ["iris", "5-class"])
def test_one_vs_rest_exact_with_the_minimum_queries(name: str) -> None:
    ds = load(name, random_state=0)
    target = OneVsRestClassifier(LogisticRegression(max_iter=5000)).fit(ds.X_train, ds.y_train)
    assert EquationSolving.supports(target)
    result = EquationSolving(model_class="ovr", random_state=0).run(
        LocalOracle(target, ds.space))
    c, d = len(target.classes_), ds.X.shape[1]
    # continuous spaces: valid rows have rank d + 1; two rows above the minimum
    assert result.info["least"] == math.ceil(c * (d + 1) / (c - 1))
    assert result.queries == result.info["least"] + 2
    assert result.complete and isinstance(result.model, OneVsRestClassifier)
    fid = fidelity(target, result.model, ds.space, ds.X_test)
    assert fid["r_test"] == 0 and fid["r_unif"] == 0 and fid["tv_unif"] < 1e-9
    X = ds.space.sample_encoded(100, 1)
    assert np.allclose(result.model.predict_proba(X), target.predict_proba(X), atol=1e-9)


def test_one_vs_rest_one_hot_space_counts_valid_rows() -> None:
    """Adult-Race's one-hot blocks: valid rows have rank 98, not 106; 125 rows suffice."""
    ds = load("adult-race", random_state=0)
    target = OneVsRestClassifier(LogisticRegression(max_iter=300)).fit(
        ds.X_train[:3000], ds.y_train[:3000])
    result = EquationSolving(model_class="ovr", random_state=0).run(
        LocalOracle(target, ds.space))
    assert result.info["least"] == math.ceil(5 * 98 / 4) and result.queries <= 133
    assert result.complete
    fid = fidelity(target, result.model, ds.space, ds.X_test)
    assert fid["r_test"] == 0 and fid["r_unif"] == 0 and fid["tv_unif"] < 1e-9


def test_one_vs_rest_spends_a_large_budget_only_up_to_a_multiple_of_the_minimum() -> None:
    """The solver's cost grows with the cube of the rows: a budget of 10,000 on Iris
    buys MOST_ROWS times the minimum (with it, 3,000 rows of Adult-income ran past five
    minutes), and the answer stays exact."""
    from stealml.attacks.equations.ovr import MOST_ROWS
    from stealml.ledger import Ledger

    ds = load("iris", random_state=0)
    target = OneVsRestClassifier(LogisticRegression(max_iter=5000)).fit(ds.X_train, ds.y_train)
    result = EquationSolving(model_class="ovr", random_state=0).run(
        LocalOracle(target, ds.space, ledger=Ledger(budget=10_000)))
    assert result.queries == MOST_ROWS * result.info["least"] and result.complete

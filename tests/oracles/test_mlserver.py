"""A real third-party server: MLServer (Seldon) serving scikit-learn, stolen over V2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.datasets import load
from stealml.oracles import OipOracle
from stealml.server.mlserver import serve_sklearn

VENV = Path(__file__).resolve().parents[2] / ".venv-mlserver"


@pytest.mark.slow
def test_binary_logistic_regression_is_extracted_exactly_from_mlserver(tmp_path) -> None:
    data = load("breast-cancer", random_state=0)
    target = LogisticRegression(max_iter=5000).fit(data.X_train, (data.y_train == data.y[0]))
    with serve_sklearn(target, "cancer-lr", tmp_path, VENV) as url:
        oracle = OipOracle(url, "cancer-lr", space=data.space, classes=[False, True],
                           price=0.0001, batch_size=4)
        result = EquationSolving(random_state=0).run(oracle)
    assert result.complete and result.queries == data.space.n_encoded + 1
    np.testing.assert_allclose(result.model.coef_, target.coef_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.model.intercept_, target.intercept_, rtol=0, atol=1e-9)
    X = data.space.sample_encoded(2000, 1)
    assert np.array_equal(result.model.predict(X), target.predict(X))

"""A differentially private target does not stop equation solving (paper section 7)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.datasets import load
from stealml.exceptions import ConfigurationError
from stealml.experiments.training import train_target
from stealml.metrics import fidelity
from stealml.modelio import load_model
from stealml.models.dp_logreg import DPLogisticRegression
from stealml.oracles import LocalOracle
from stealml.targets import make_target


@pytest.mark.parametrize("mechanism", ["objective", "output"])
def test_dp_target_is_extracted_exactly_with_d_plus_1_queries(mechanism: str) -> None:
    ds = load("breast-cancer", random_state=0)
    d = ds.space.n_encoded
    coefs = []
    for epsilon in (1.0, 4.0, 16.0):
        target = DPLogisticRegression(epsilon=epsilon, mechanism=mechanism,
                                      random_state=1).fit(ds.X_train, ds.y_train)
        coefs.append(target.coef_.copy())
        result = EquationSolving(random_state=0).run(LocalOracle(target, ds.space))
        assert type(result.model) is LogisticRegression
        assert result.complete and result.queries == d + 1
        fid = fidelity(target, result.model, ds.space, ds.X_test, 2000, 0)
        assert fid["tv_test"] < 1e-9 and fid["tv_unif"] < 1e-9
        assert fid["r_test"] == 0 and fid["r_unif"] == 0
        np.testing.assert_allclose(result.model.coef_, target.coef_, rtol=1e-6, atol=1e-9)
    # the privacy noise is real: each epsilon gives another model, the smallest the noisiest
    assert not np.allclose(coefs[0], coefs[1])
    plain = LogisticRegression(max_iter=5000).fit(ds.X_train, ds.y_train).coef_
    assert np.linalg.norm(coefs[0] - plain) > np.linalg.norm(coefs[2] - plain)


def test_dp_target_trains_saves_and_refuses_bad_budgets(tmp_path) -> None:
    out = tmp_path / "dp.skops"
    report = train_target("breast-cancer", "dp-logreg", str(out), epsilon=4.0)
    loaded = load_model(out)
    assert isinstance(loaded.model, DPLogisticRegression) and loaded.model.epsilon == 4.0
    assert report["epsilon"] == 4.0 and loaded.meta["epsilon"] == 4.0
    for bad in (0, -1.0, float("inf"), "much"):
        with pytest.raises(ConfigurationError, match="epsilon"):
            make_target("dp-logreg", "classification", 2, epsilon=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="privacy budget"):
        make_target("logreg", "classification", 2, epsilon=1.0)
    with pytest.raises(ConfigurationError, match="binary"):
        make_target("dp-logreg", "classification", 3)

from __future__ import annotations

import numpy as np
import pytest

from stealml.attacks import EquationSolving
from stealml.attacks.equations.kernel import match_representers
from stealml.exceptions import ConfigurationError
from stealml.metrics import fidelity
from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace


@pytest.fixture(scope="module")
def klr():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 4))
    y = np.digitize(X[:, 0] + X[:, 1] ** 2, [-0.3, 0.6])
    return KernelLogisticRegression(gamma=1.0, n_representers=4, C=100.0,
                                    random_state=0).fit(X, y)


def test_kernel_logreg_recovers_representers(klr) -> None:
    space = FeatureSpace.continuous(4)
    # 200 equations in 31 unknowns; a start can end in a local minimum (seen in its loss)
    attack = EquationSolving(model_class="kernel-logreg", n_representers=4, gamma=1.0,
                             n_queries=100, restarts=10, random_state=0)
    assert EquationSolving.supports(klr)
    k = attack.n_unknowns(4, 3)
    assert k == 4 * (4 + 3) + 3
    result = attack.run(LocalOracle(klr, space))
    assert result.complete and isinstance(result.model, KernelLogisticRegression)
    errors = match_representers(klr.representers_, result.model.representers_)
    assert errors.max() < 1e-9  # every representer (a training point) leaked
    fid = fidelity(klr, result.model, space)
    assert fid["r_unif"] == 0 and fid["tv_unif"] < 1e-9


def test_kernel_logreg_needs_gamma(klr) -> None:
    with pytest.raises(ConfigurationError, match="gamma"):
        EquationSolving(model_class="kernel-logreg", n_representers=4).run(
            LocalOracle(klr, FeatureSpace.continuous(4)))

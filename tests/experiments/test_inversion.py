from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.experiments.inversion import invert
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace


def test_inverting_the_stolen_model_matches_the_true_one() -> None:
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.8, 0.8, (4, 30))
    X = np.vstack([c + rng.normal(0, 0.2, (40, 30)) for c in centres]).clip(-1, 1)
    y = np.repeat(np.arange(4), 40)
    target = LogisticRegression(max_iter=2000).fit(X, y)
    space = FeatureSpace.continuous(30)
    stolen = EquationSolving(random_state=0).run(LocalOracle(target, space)).model
    lo, hi = space.encoded_bounds()
    for label in range(4):
        a = invert(target, label, lo, hi, steps=100)
        b = invert(stolen, label, lo, hi, steps=100)
        assert target.predict_proba(a[None, :])[0, label] > 0.99
        assert np.abs(a - b).max() < 1e-6
        # the inversion resembles its class's centre more than any other's
        assert np.argmin(np.linalg.norm(centres - a, axis=1)) == label

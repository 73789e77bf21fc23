"""Corners of a ReLU network's answers along a line (``find_kinks``), on real networks."""

from __future__ import annotations

import numpy as np

from stealml.attacks._relu_lines import Line, Outputs, find_kinks
from stealml.attacks._relu_model import make_relu_mlp
from stealml.attacks.base import Querier
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace


def _outputs(corners: list[float]) -> Outputs:
    """A 1-input regressor whose answer bends at each of ``corners`` (x in [-1, 1])."""
    h = len(corners)
    target = make_relu_mlp([np.ones((1, h)), np.arange(1.0, h + 1)[:, None]],
                           [-np.asarray(corners), np.zeros(1)], None)
    oracle = LocalOracle(target, FeatureSpace.continuous(1))
    return Outputs(Querier(oracle), "values", np.zeros(1), np.ones(1), np.ones(1, bool))


def test_corner_exactly_at_a_split_point_is_found() -> None:
    # two corners in [0, 1]: the first wave splits the line at t = 0.5, where x = 0 bends
    f = _outputs([0.0, 0.6])
    ts = find_kinks(f, Line(np.array([-1.0]), np.array([2.0])))
    assert len(ts) == 2
    assert np.allclose(ts, [0.5, 0.8], atol=1e-6)


def test_known_corners_are_skipped_and_the_rest_found() -> None:
    f = _outputs([-0.5, 0.1, 0.7])
    line = Line(np.array([-1.0]), np.array([2.0]))
    before = f.asked
    ts = find_kinks(f, line, known=np.array([0.25, 0.85]))
    assert np.allclose(ts, [0.55], atol=1e-9)
    assert f.asked - before <= 20  # four per piece without a new corner, a few for one

"""Feature discovery against real models behind `stealml serve` (loopback) and locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from stealml.attacks import FeatureDiscovery
from stealml.attacks._discovery_map import DiscoveredExtraction
from stealml.attacks._discovery_refine import Boundary, split_point
from stealml.exceptions import ConfigurationError
from stealml.ledger import Ledger
from stealml.modelio import load_model, save_model
from stealml.oracles import HttpOracle, LocalOracle
from stealml.policies import ApiPolicy
from stealml.server import FeatureExtraction, running
from stealml.server.settings import ModelSettings, ServiceSettings
from stealml.space import ContinuousFeature, FeatureSpace


def _serve_file(tmp: Path, name: str, model: Any, space: FeatureSpace,
                ex: FeatureExtraction, incomplete: str = "zeros") -> ServiceSettings:
    path = tmp / f"{name}.skops"
    save_model(path, model, space, {"extraction": ex.to_dict()})
    return ServiceSettings(models=[ModelSettings(
        name=name, path=path, significant_digits=16, incomplete=incomplete,  # type: ignore[arg-type]
        price=0.0001)])


def _train(space: FeatureSpace, ex: FeatureExtraction, y_of: Any, seed: int,
           estimator: Any) -> tuple[Any, np.ndarray]:
    raw = space.sample(600, seed)
    y = y_of(space.encode(raw))
    return estimator.fit(ex.transform(raw), y), raw


def _served_answers(model: Any, ex: FeatureExtraction, space: FeatureSpace,
                    X: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(ex.transform(space.decode(X))))


def test_finds_bins_and_one_hot_over_http_and_steals_exactly(tmp_path, mixed_space) -> None:
    raw = mixed_space.sample(600, 0)
    ex = FeatureExtraction.fit(mixed_space, raw, n_bins=6)
    X = mixed_space.encode(raw)
    y = (X[:, 0] - X[:, 1] + X[:, 3] - X[:, 6] > 0).astype(int)
    model = LogisticRegression(C=10.0, max_iter=5000).fit(ex.transform(raw), y)
    with running(_serve_file(tmp_path, "amazon", model, mixed_space, ex)) as url:
        oracle = HttpOracle(url, "amazon", ledger=Ledger())
        result = FeatureDiscovery(epsilon=1e-7, random_state=0).run(oracle)
    kinds = [f["kind"] for f in result.info["features"]]
    assert kinds == ["bins", "bins", "onehot", "onehot"]
    assert result.info["missing_queries"] and result.info["model_class"] == "softmax"
    assert result.complete and result.info["exact"]
    for f, name in zip(result.info["features"][:2], ["age", "hours"], strict=True):
        feat = mixed_space.features[mixed_space.names.index(name)]
        true = 2 * (ex.bins[name] - feat.min) / (feat.max - feat.min) - 1  # type: ignore[union-attr]
        assert len(f["edges"]) == len(true)
        assert np.max(np.abs(np.asarray(f["edges"]) - true)) < 2.0 / 73 + 1e-9
    # far fewer queries than the bins' unknowns times the paper's alpha, all paid for
    assert result.queries == oracle.ledger.queries < 300
    Xu = mixed_space.sample_encoded(3000, 5)
    want = _served_answers(model, ex, mixed_space, Xu)
    got = result.model.predict_proba(Xu)
    assert np.max(np.abs(got - want)) < 1e-9
    # the stolen pipeline is a plain scikit-learn model and saves as one
    save_model(tmp_path / "stolen.skops", result.model, mixed_space)
    again = load_model(tmp_path / "stolen.skops").model
    assert np.array_equal(again.predict(Xu), result.model.predict(Xu))


def test_unbinned_numeric_features_are_found_linear(tmp_path) -> None:
    space = FeatureSpace.continuous(5, 0.0, 16.0)
    ex = FeatureExtraction(space)  # binning disabled, as for the paper's Digits
    model, _ = _train(space, ex, lambda X: np.digitize(X[:, 0] + X[:, 2] - X[:, 4],
                                                       [-0.4, 0.4]), 1,
                      LogisticRegression(max_iter=5000))
    with running(_serve_file(tmp_path, "digits", model, space, ex)) as url:
        result = FeatureDiscovery(random_state=0).run(HttpOracle(url, "digits"))
    assert [f["kind"] for f in result.info["features"]] == ["linear"] * 5
    # base row, three points a feature, the test rows
    assert result.queries == 1 + 3 * 5 + 8
    Xu = space.sample_encoded(2000, 3)
    assert np.max(np.abs(result.model.predict_proba(Xu)
                         - _served_answers(model, ex, space, Xu))) < 1e-9


def test_extract_and_test_tells_one_vs_rest_from_softmax(tmp_path) -> None:
    space = FeatureSpace.continuous(2, 0.0, 10.0, names=["a", "b"])
    raw = space.sample(600, 2)
    ex = FeatureExtraction.fit(space, raw, n_bins=3)
    X = space.encode(raw)
    y = np.digitize(X[:, 0] - 0.5 * X[:, 1], [-0.3, 0.3])
    ovr = OneVsRestClassifier(LogisticRegression(max_iter=5000)).fit(ex.transform(raw), y)
    with running(_serve_file(tmp_path, "bigml", ovr, space, ex)) as url:
        result = FeatureDiscovery(epsilon=1e-7, random_state=0).run(HttpOracle(url, "bigml"))
    assert result.info["softmax_test_error"] > 1e-3
    assert result.info["model_class"] == "ovr" and result.info["exact"]
    assert isinstance(result.model[-1], OneVsRestClassifier)
    Xu = space.sample_encoded(2000, 4)
    assert np.max(np.abs(result.model.predict_proba(Xu)
                         - _served_answers(ovr, ex, space, Xu))) < 1e-6


def test_without_incomplete_inputs_varies_one_feature_from_a_base_row(mixed_space) -> None:
    ex = DiscoveredExtraction(["bins", "bins", "onehot", "onehot"], [1, 1, 2, 3],
                              [[-0.5, 0.1, 0.6], [0.2], [], []])
    X = mixed_space.sample_encoded(500, 3)
    y = np.digitize(X[:, 0] + X[:, 1] - X[:, 4], [-0.5, 0.5])
    target = Pipeline([("extraction", ex), ("model", LogisticRegression(max_iter=5000))])
    target.fit(X, y)
    oracle = LocalOracle(target, mixed_space)  # incomplete inputs refused
    result = FeatureDiscovery(epsilon=1e-6, random_state=0).run(oracle)
    assert not result.info["missing_queries"] and result.info["exact"]
    found = [f.get("edges") for f in result.info["features"][:2]]
    assert [len(e) for e in found] == [3, 1]
    Xu = mixed_space.sample_encoded(2000, 9)
    assert np.array_equal(result.model.predict(Xu), target.predict(Xu))


def test_bad_settings_are_refused_before_any_query(mixed_space, binary_logreg) -> None:
    oracle = LocalOracle(binary_logreg, mixed_space)
    with pytest.raises(ConfigurationError, match="softmax or ovr"):
        FeatureDiscovery(model_class="mlp").run(oracle)
    with pytest.raises(ConfigurationError, match="epsilon"):
        FeatureDiscovery(epsilon=0).run(oracle)
    assert oracle.ledger.queries == 0


@pytest.mark.parametrize("indicators", [False, True])
def test_tells_missing_value_predictors_from_zeros(tmp_path, indicators) -> None:
    space = FeatureSpace.continuous(3, 0.0, 1.0)
    ex = FeatureExtraction(space, missing_indicators=indicators)
    raw = space.sample(400, 6)
    raw[np.random.default_rng(6).random(raw.shape) < 0.2] = None  # trained with gaps
    X = np.nan_to_num(space.encode(raw))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    # as the service encodes an omitted feature: zeros, or (with indicators) its predictor
    model = LogisticRegression(max_iter=5000).fit(np.nan_to_num(ex.transform(raw)), y)
    incomplete = "native" if indicators else "zeros"
    with running(_serve_file(tmp_path, "m", model, space, ex, incomplete)) as url:
        result = FeatureDiscovery(random_state=0).run(HttpOracle(url, "m"))
    assert result.info["missing_predictors"] is indicators
    rows = space.encode(space.sample(500, 8, missing_rate=0.3))
    want = model.predict_proba(np.nan_to_num(ex.transform(space.decode(rows))))
    assert np.max(np.abs(result.model.predict_proba(rows) - want)) < 1e-9


def _binned_target(edges: list[list[float]], seed: int) -> tuple[Pipeline, FeatureSpace]:
    """A logistic model over bins of continuous features in [0, 10] (edges scaled), which
    answers incomplete queries with the omitted features' columns at zero (Amazon)."""
    space = FeatureSpace.continuous(len(edges), 0.0, 10.0)
    ex = DiscoveredExtraction(["bins"] * len(edges), [1] * len(edges), edges)
    X = space.sample_encoded(3000, seed)
    y = (np.sin(3 * X[:, 0]) + X[:, 1:].sum(axis=1) ** 2 > 0.6).astype(int)
    return Pipeline([("extraction", ex), ("model", LogisticRegression(C=100.0, max_iter=5000))
                     ]).fit(X, y), space


def _agreement(result: Any, target: Pipeline, space: FeatureSpace, n: int) -> float:
    Xu = space.sample_encoded(n, 11)
    return float(np.mean(result.model.predict(Xu) == target.predict(Xu)))


def test_refinement_narrows_what_matters_several_features_a_query() -> None:
    rng = np.random.default_rng(4)
    edges = [sorted(rng.uniform(-0.9, 0.9, 5).tolist()) for _ in range(3)]
    target, space = _binned_target(edges, 4)
    policy = ApiPolicy(incomplete="native")  # NaN columns: the bins' zeros
    paper = FeatureDiscovery(tolerance=None, random_state=0).run(
        LocalOracle(target, space, policy))
    result = FeatureDiscovery(random_state=0).run(LocalOracle(target, space, policy))
    info = result.info
    assert info["exact"] and info["missed_bins"] == 0
    assert [len(f["edges"]) for f in info["features"]] == [5, 5, 5]
    assert paper.info["doubt"] > 1e-4 >= 1e-6 >= info["doubt"]
    refine_queries = result.queries - info["coarse_queries"]
    # each refinement answer narrows a boundary of each of the three features
    assert info["narrowed"] > 2 * refine_queries > 0
    assert result.queries < paper.queries + 150
    assert _agreement(result, target, space, 40000) == 1.0


def test_refinement_finds_a_bin_the_line_search_stepped_over() -> None:
    # two boundaries 0.25% of the range apart, searched to 1% of it: one interval
    # ((0.1875, 0.203125]) holds both, and a refinement answer from the bin between
    # them tells
    target, space = _binned_target([[-0.4, 0.195, 0.2, 0.6], [0.1]], 2)
    result = FeatureDiscovery(epsilon=1e-2, random_state=0).run(
        LocalOracle(target, space, ApiPolicy(incomplete="native")))
    info = result.info
    assert info["missed_bins"] == 1 and info["exact"]
    found = info["features"][0]["edges"]
    assert len(found) == 4 and 0.1875 < found[1] < found[2] <= 0.203125
    assert _agreement(result, target, space, 20000) == 1.0


def test_split_points_prefer_grid_and_round_values() -> None:
    grid = ContinuousFeature("age", 17.0, 90.0, granularity=1.0)
    z = split_point(grid, -0.5, -0.4)  # raw 35.25 .. 38.9: the grid value in the middle
    assert z is not None and abs(grid.min + (z + 1) * 36.5 - 37.0) < 1e-9
    assert split_point(grid, _scale(grid, 37.2), _scale(grid, 37.9)) is None  # none inside
    f = ContinuousFeature("x", 0.0, 10.0)
    # 5.8 is over ten times rounder than (5.799, 5.8013): asked first, off the middle
    z = split_point(f, _scale(f, 5.799), _scale(f, 5.8013))
    assert z == _scale(f, 5.8)
    z = split_point(f, _scale(f, 5.81), _scale(f, 5.82))  # else the middle fifth's roundest
    assert z is not None and abs(f.min + (z + 1) * 5.0 - 5.815) < 1e-12
    lo = 0.25
    assert split_point(f, lo, np.nextafter(lo, 1.0)) is None  # adjacent floats
    b = Boundary(0, -0.25, 0.5, weight=0.5)
    assert b.edge == 0.125 and b.doubt == 0.5 * 0.375
    b.at_hi = True
    assert b.edge == 0.5


def _scale(f: ContinuousFeature, x: float) -> float:
    return 2.0 * (x - f.min) / (f.max - f.min) - 1.0

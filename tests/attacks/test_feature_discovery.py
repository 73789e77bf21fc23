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
from stealml.exceptions import ConfigurationError
from stealml.ledger import Ledger
from stealml.modelio import load_model, save_model
from stealml.oracles import HttpOracle, LocalOracle
from stealml.server import FeatureExtraction, running
from stealml.server.settings import ModelSettings, ServiceSettings
from stealml.space import FeatureSpace


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

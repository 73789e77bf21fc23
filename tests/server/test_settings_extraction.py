"""Service settings (service.toml, CLI, environment) and server-side feature extraction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.exceptions import ConfigurationError, ModelFileError, SpaceDefinitionError
from stealml.modelio import save_model
from stealml.server import FeatureExtraction, load_settings
from stealml.server.models import ServedModel
from stealml.server.settings import ModelSettings, key_from_arg
from stealml.space import FeatureSpace

TOML = """
port = 9000
[[keys]]
name = "alice"
key = "sk-alice-0001"
quota = 5
[[models]]
name = "m"
path = "model.skops"
significant_digits = 16
incomplete = "zeros"
"""


def test_service_toml_cli_and_environment(tmp_path, monkeypatch) -> None:
    (tmp_path / "service.toml").write_text(TOML)
    monkeypatch.setenv("STEALML_SERVE_MAX_BATCH", "7")
    s = load_settings(tmp_path / "service.toml", port=9001,
                      keys=[key_from_arg("bob:sk-bob-00002")])
    assert (s.host, s.port, s.max_batch) == ("127.0.0.1", 9001, 7)
    assert s.models[0].path == tmp_path / "model.skops"
    assert s.models[0].policy().significant_digits == 16
    assert [k.name for k in s.keys] == ["alice", "bob"] and s.keys[0].quota == 5
    with pytest.raises(ConfigurationError, match=r"models\.0\.output"):
        load_settings(None, models=[{"name": "m", "path": "x", "output": "everything"}])
    with pytest.raises(ConfigurationError, match="unique"):
        load_settings(None, keys=[key_from_arg("a:sk-same-key"), key_from_arg("b:sk-same-key")])
    with pytest.raises(ConfigurationError, match="NAME:KEY"):
        key_from_arg("no-key")
    (tmp_path / "bad.toml").write_text("port = ")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_settings(tmp_path / "bad.toml")


def test_pickles_are_not_served(tmp_path, binary_logreg) -> None:
    import joblib

    joblib.dump(binary_logreg, tmp_path / "m.joblib")
    with pytest.raises(ModelFileError, match="runs code when loaded"):
        ServedModel(ModelSettings(name="m", path=tmp_path / "m.joblib"))


def test_quantile_binning_and_missing_indicators(tmp_path) -> None:
    space = FeatureSpace.from_dict({"features": [
        {"name": "x", "type": "continuous", "min": 0, "max": 10},
        {"name": "c", "type": "categorical", "values": ["a", "b"]}]})
    rng = np.random.default_rng(0)
    raw = space.sample(400, rng)
    ex = FeatureExtraction.fit(space, raw, n_bins=4)
    edges = ex.bins["x"]
    assert len(edges) == 3 and np.allclose(edges, np.quantile(raw[:, 0].astype(float),
                                                              [0.25, 0.5, 0.75]))
    Z = ex.transform(raw)
    assert Z.shape == (400, 6) and np.array_equal(Z[:, :4].sum(axis=1), np.ones(400))
    assert np.isnan(ex.transform([[None, "b"]])[0, :4]).all()
    indicated = FeatureExtraction(space, ex.bins, missing_indicators=True)
    assert indicated.transform([[None, "b"]]).tolist() == [[0, 0, 0, 0, 0, 1, 1, 0]]
    assert FeatureExtraction.from_dict(space, ex.to_dict()).bins.keys() == {"x"}
    with pytest.raises(SpaceDefinitionError, match="only continuous"):
        FeatureExtraction(space, {"c": [0.5]})
    y = (Z[:, 1] + Z[:, 4] > 0).astype(int)
    model = LogisticRegression().fit(Z, y)
    save_model(tmp_path / "binned.skops", model, space, {"extraction": ex.to_dict()})
    served = ServedModel(ModelSettings(name="b", path=tmp_path / "binned.skops"))
    out = served.predict([{"x": 3.0, "c": "a"}])
    assert out.probabilities is not None
    assert np.array_equal(out.probabilities, model.predict_proba(ex.transform([[3.0, "a"]])))
    assert "bins" not in str(served.metadata())


def test_onnx_labels_top_k_and_regression(tmp_path, softmax_logreg, mixed_space) -> None:
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeRegressor

    X = mixed_space.sample_encoded(50, 0)
    (tmp_path / "m.onnx").write_bytes(to_onnx(softmax_logreg, X[:1].astype(np.float32),
                                              options={"zipmap": False}).SerializeToString())
    mixed_space.save(tmp_path / "space.json")
    rows = mixed_space.decode(X[:5])
    onnx = ServedModel(ModelSettings(name="o", path=tmp_path / "m.onnx", output="top-k",
                                     top_k=1, space=tmp_path / "space.json"))
    shown = onnx.predict(rows).probabilities
    assert shown is not None and (np.isnan(shown).sum(axis=1) == 2).all()
    np.testing.assert_allclose(np.nanmax(shown, axis=1),
                               softmax_logreg.predict_proba(X[:5]).max(axis=1), rtol=1e-5)
    labels = ServedModel(ModelSettings(name="o", path=tmp_path / "m.onnx", output="labels",
                                       space=tmp_path / "space.json"))
    assert labels.predict(rows).probabilities is None and labels.output == "labels"
    assert labels.predict(rows).labels == softmax_logreg.predict(X[:5]).tolist()
    reg = DecisionTreeRegressor(max_depth=3).fit(X, X[:, 0] * 10)
    save_model(tmp_path / "reg.skops", reg, mixed_space)
    served = ServedModel(ModelSettings(name="r", path=tmp_path / "reg.skops", rounding=2))
    out = served.predict(rows)
    assert served.output == "value" and out.values is not None
    assert np.array_equal(out.values, np.round(reg.predict(X[:5]), 2))

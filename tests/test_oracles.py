from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

from stealml.exceptions import FeatureCountError, NonFiniteInputError
from stealml.oracles import LocalOracle, Oracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace


def test_oracle_satisfies_protocol(binary_logreg, mixed_space) -> None:
    oracle = LocalOracle(binary_logreg, space=mixed_space)
    assert isinstance(oracle, Oracle)
    assert oracle.reveals == {"labels", "probabilities"}
    assert list(oracle.classes) == [0, 1]


def test_probabilities_match_the_model(softmax_logreg, mixed_space) -> None:
    X = mixed_space.sample_encoded(20, 0)
    ans = LocalOracle(softmax_logreg, space=mixed_space).query(X)
    assert np.array_equal(ans.probabilities, softmax_logreg.predict_proba(X))
    assert np.array_equal(ans.labels, softmax_logreg.predict(X))
    assert set(ans.raw[0]["probabilities"]) == {"0", "1", "2"}


def test_rounding_labels_only_and_top_k(softmax_logreg, mixed_space) -> None:
    X = mixed_space.sample_encoded(20, 1)
    p = softmax_logreg.predict_proba(X)
    r = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(rounding=2)).query(X)
    assert np.array_equal(r.probabilities, np.round(p, 2))
    lab = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(output="labels"))
    assert lab.query(X).probabilities is None and "probabilities" not in lab.reveals
    top = LocalOracle(softmax_logreg, mixed_space, ApiPolicy(output="top-k", top_k=1)).query(X)
    assert np.all(np.sum(~np.isnan(top.probabilities), axis=1) == 1)
    best = np.nanargmax(top.probabilities, axis=1)
    assert np.array_equal(best, p.argmax(axis=1))


def test_incomplete_queries(binary_logreg, mixed_space) -> None:
    X = mixed_space.encode([[None, 50.0, "F", "gov"]])
    with pytest.raises(NonFiniteInputError, match="incomplete"):
        LocalOracle(binary_logreg, mixed_space).query(X)
    zeros = LocalOracle(binary_logreg, mixed_space, ApiPolicy(incomplete="zeros")).query(X)
    expect = binary_logreg.predict_proba(np.nan_to_num(X))
    assert np.array_equal(zeros.probabilities, expect)


def test_bad_queries(binary_logreg, mixed_space) -> None:
    oracle = LocalOracle(binary_logreg, mixed_space)
    with pytest.raises(FeatureCountError, match="X has 3 features, but the space has 7"):
        oracle.query(np.zeros((1, 3)))
    with pytest.raises(NonFiniteInputError):
        oracle.query(np.full((1, 7), np.inf))
    assert oracle.ledger.queries == 0


def test_space_must_fit_model(binary_logreg) -> None:
    with pytest.raises(FeatureCountError, match="the model takes 7 features"):
        LocalOracle(binary_logreg, FeatureSpace.continuous(5))


def test_labels_only_model_and_regressor() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (100, 2))
    svc = SVC().fit(X, X[:, 0] > 0)
    assert LocalOracle(svc).reveals == {"labels"}
    reg = DecisionTreeRegressor(max_depth=2).fit(X, X[:, 0] * 3)
    ans = LocalOracle(reg, policy=ApiPolicy(rounding=1)).query(X[:5])
    assert np.array_equal(ans.values, np.round(reg.predict(X[:5]), 1))
    assert ans.classes is None


def test_raw_input_pipeline(mixed_space) -> None:
    raw = mixed_space.sample(300, 0)
    y = (raw[:, 2] == "M") ^ (raw[:, 0].astype(float) > 50)
    pipe = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1]),
                           ("cat", OneHotEncoder(), [2, 3])]),
        LogisticRegression()).fit(raw, y)
    oracle = LocalOracle(pipe, mixed_space, model_input="raw")
    rows = mixed_space.sample(10, 1)
    got = oracle.query_raw(rows)
    assert np.allclose(got.probabilities, pipe.predict_proba(rows))


def test_onnx_model(binary_logreg, mixed_space, tmp_path) -> None:
    from skl2onnx import to_onnx

    from stealml.modelio import load_model

    X = mixed_space.sample_encoded(50, 0)
    onx = to_onnx(binary_logreg, X[:1].astype(np.float32),
                  options={id(binary_logreg): {"zipmap": False}})
    path = tmp_path / "target.onnx"
    path.write_bytes(onx.SerializeToString())
    loaded = load_model(path)
    oracle = LocalOracle(loaded.model, mixed_space, digest=loaded.digest)
    ans = oracle.query(X)
    assert list(oracle.classes) == [0, 1]
    assert np.allclose(ans.probabilities, binary_logreg.predict_proba(X), atol=1e-6)
    assert np.array_equal(ans.labels, binary_logreg.predict(X))
    # scikit-learn's own tests of the kind (which the attacks' supports() use) answer
    from sklearn.base import is_classifier, is_regressor

    from stealml.attacks import RetrainUniform

    assert is_classifier(loaded.model) and not is_regressor(loaded.model)
    assert RetrainUniform.supports(loaded.model)

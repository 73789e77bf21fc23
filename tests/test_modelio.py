from __future__ import annotations

import pickle

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from stealml.exceptions import ModelFileError, UntrustedTypesError
from stealml.modelio import load_model, save_model


def test_round_trip_with_space(binary_logreg, mixed_space, tmp_path) -> None:
    path = tmp_path / "t.skops"
    save_model(path, binary_logreg, mixed_space, {"kind": "logreg"})
    loaded = load_model(path)
    assert loaded.space == mixed_space and loaded.meta == {"kind": "logreg"}
    assert np.array_equal(loaded.model.coef_, binary_logreg.coef_)


@pytest.mark.parametrize("model", [DecisionTreeClassifier(max_depth=2),
                                   MLPClassifier(hidden_layer_sizes=(3,), max_iter=20)])
def test_users_plain_skops_file_loads_without_ceremony(model, tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    model.fit(X, X[:, 0] > 0)
    path = tmp_path / "user.skops"
    sio.dump(model, path)  # sklearn internals (Tree, AdamOptimizer) are not in skops' default
    loaded = load_model(path)
    assert loaded.space is None
    assert np.array_equal(loaded.model.predict(X), model.predict(X))


class HomeMadeClassifier(LogisticRegression):
    """A type from outside scikit-learn: loading it could run its code."""


def test_foreign_types_are_refused_by_name(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    path = tmp_path / "odd.skops"
    sio.dump(make_pipeline(FunctionTransformer(), HomeMadeClassifier()).fit(X, X[:, 0] > 0),
             path)
    with pytest.raises(UntrustedTypesError, match="HomeMadeClassifier") as info:
        load_model(path)
    assert len(info.value.types) == 1
    assert load_model(path, trusted=True).model.predict(X).shape == (40,)


def test_pickle_only_when_trusted(binary_logreg, tmp_path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(binary_logreg))
    with pytest.raises(ModelFileError, match="runs code when loaded"):
        load_model(path)
    assert load_model(path, trusted=True).model.coef_.shape == (1, 7)


def test_not_a_model(tmp_path) -> None:
    junk = tmp_path / "junk.skops"
    junk.write_text("hello")
    with pytest.raises(ModelFileError, match="not a model file"):
        load_model(junk)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.skops")
    data = tmp_path / "data.skops"
    sio.dump({"a": 1}, data)
    with pytest.raises(ModelFileError, match="not a model"):
        load_model(data)

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stealml.exceptions import (
    FeatureCountError,
    NonFiniteInputError,
    SpaceDefinitionError,
    UnknownCategoryError,
)
from stealml.space import CategoricalFeature, ContinuousFeature, FeatureSpace


def test_json_round_trip(mixed_space: FeatureSpace) -> None:
    text = mixed_space.to_json()
    assert FeatureSpace.from_json(text) == mixed_space
    assert json.loads(text)["features"][2] == {"name": "sex", "type": "categorical",
                                               "values": ["F", "M"]}


def test_issue_example_json() -> None:
    space = FeatureSpace.from_json(json.dumps({"features": [
        {"name": "age", "type": "continuous", "min": 17, "max": 90},
        {"name": "sex", "type": "categorical", "values": ["F", "M"]}]}))
    assert space.n_features == 2 and space.n_encoded == 3
    assert space.encoded_names == ["age", "sex=F", "sex=M"]
    assert space.encode([[17, "M"], [90, "F"]]).tolist() == [[-1, 0, 1], [1, 1, 0]]


def test_encode_scales_to_unit_interval_and_one_hot(mixed_space: FeatureSpace) -> None:
    X = mixed_space.sample_encoded(500, random_state=0)
    assert X.shape == (500, 7)
    assert X.min() >= -1 and X.max() <= 1
    assert np.allclose(X[:, 2:4].sum(axis=1), 1) and np.allclose(X[:, 4:7].sum(axis=1), 1)


def test_sampling_is_seeded_and_respects_granularity(mixed_space: FeatureSpace) -> None:
    a = mixed_space.sample(50, random_state=3)
    b = mixed_space.sample(50, random_state=3)
    assert (a == b).all()
    ages = np.array(a[:, 0], dtype=float)
    assert np.all(ages == np.round(ages)) and ages.min() >= 17 and ages.max() <= 90
    assert not (a == mixed_space.sample(50, random_state=4)).all()


def test_missing_values_encode_to_nan_and_back(mixed_space: FeatureSpace) -> None:
    Z = mixed_space.encode([[None, 50.0, "F", None]])
    assert np.isnan(Z[0, 0]) and np.isnan(Z[0, 4:7]).all() and Z[0, 2] == 1
    raw = mixed_space.decode(Z)
    assert raw[0, 0] is None and raw[0, 3] is None and raw[0, 2] == "F"
    with pytest.raises(NonFiniteInputError):
        mixed_space.encode([[None, 50.0, "F", "gov"]], allow_missing=False)


def test_dict_rows(mixed_space: FeatureSpace) -> None:
    Z = mixed_space.encode([{"age": 17, "sex": "M", "hours": 0, "work": "self"}])
    assert Z.tolist() == [[-1, -1, 0, 1, 0, 0, 1]]
    with pytest.raises(FeatureCountError, match="unknown feature names: colour"):
        mixed_space.encode([{"colour": "red"}])


def test_bad_inputs(mixed_space: FeatureSpace) -> None:
    with pytest.raises(FeatureCountError, match="X has 3 features, but the space has 4"):
        mixed_space.encode([[20, 30, "F"]])
    with pytest.raises(UnknownCategoryError, match="'X'"):
        mixed_space.encode([[20, 30, "X", "gov"]])
    with pytest.raises(NonFiniteInputError):
        mixed_space.encode([[np.inf, 30, "F", "gov"]])
    with pytest.raises(FeatureCountError):
        mixed_space.decode(np.zeros((1, 3)))


@pytest.mark.parametrize("bad", [
    {}, {"features": []}, {"features": [{"name": "a"}]},
    {"features": [{"name": "a", "type": "continuous", "min": 2, "max": 1}]},
    {"features": [{"name": "a", "type": "categorical", "values": []}]},
    {"features": [{"name": "a", "type": "ordinal"}]},
    {"features": [{"name": "a", "type": "continuous", "min": 0, "max": 1},
                  {"name": "a", "type": "continuous", "min": 0, "max": 1}]},
])
def test_bad_space_definitions(bad: dict) -> None:
    with pytest.raises(SpaceDefinitionError):
        FeatureSpace.from_dict(bad)


def test_continuous_default_is_identity() -> None:
    space = FeatureSpace.continuous(3)
    X = np.random.default_rng(0).uniform(-1, 1, (10, 3))
    assert space.is_identity
    assert np.allclose(space.encode(space.decode(X)), X)


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6),
       values=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True),
       seed=st.integers(0, 2**31))
def test_decode_inverts_encode(lo: float, width: float, values: list[str], seed: int) -> None:
    space = FeatureSpace([ContinuousFeature("x", lo, lo + width),
                          CategoricalFeature("c", tuple(values))])
    raw = space.sample(20, random_state=seed)
    back = space.decode(space.encode(raw))
    assert list(back[:, 1]) == list(raw[:, 1])
    assert np.allclose(back[:, 0].astype(float), raw[:, 0].astype(float),
                       rtol=1e-9, atol=1e-9 * width)

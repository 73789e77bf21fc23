"""Offline data sets: sizes against the paper's Table 3, encoding, split, provenance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stealml.datasets import (
    DATASETS,
    Dataset,
    list_datasets,
    load,
    provenance,
)
from stealml.datasets._files import DATA_DIR, sha256
from stealml.exceptions import ConfigurationError, DatasetError
from stealml.space import CategoricalFeature

# name: (rows, encoded features, classes) that we deliver, and the paper's numbers.
OURS = {
    "circles": (5000, 2, 2),
    "moons": (5000, 2, 2),
    "blobs": (5000, 2, 3),
    "5-class": (1000, 20, 5),
    "iris": (150, 4, 3),
    "digits": (1797, 64, 10),
    "adult-income": (48842, 108, 2),
    "adult-race": (48842, 105, 5),
    "breast-cancer": (683, 9, 2),
    "diabetes": (768, 8, 2),
    "mushrooms": (5644, 98, 2),
    "german-credit": (1000, 61, 2),
    "spambase": (4597, 57, 2),
    "faces": (400, 10304, 40),
    "diabetes-progression": (442, 10, None),
    "marketing": (6876, 75, 9),
    "contraceptive": (1473, 24, 3),
}
PAPER = {  # Table 3; Table 5 for german-credit and spambase (Email Spam); 4.3 for faces
    "circles": (5000, 2, 2),
    "moons": (5000, 2, 2),
    "blobs": (5000, 2, 3),
    "5-class": (1000, 20, 5),
    "iris": (150, 4, 3),
    "digits": (1797, 64, 10),
    "adult-income": (48842, 108, 2),
    "adult-race": (48842, 105, 5),
    "breast-cancer": (683, 10, 2),
    "diabetes": (768, 8, 2),
    "mushrooms": (8124, 112, 2),
    "german-credit": (1000, 11, 2),
    "spambase": (4601, 46, 2),
    "faces": (400, 10304, 40),
    "diabetes-progression": (None, None, None),
    "marketing": (None, None, None),
    "contraceptive": (None, None, None),
}
SUBSTITUTES = {"marketing": "GSS Survey", "contraceptive": "Steak Survey"}


@pytest.fixture(scope="module", params=DATASETS)
def ds(request: pytest.FixtureRequest) -> Dataset:
    return load(request.param, random_state=0)


def test_registry_lists_every_data_set() -> None:
    assert set(DATASETS) == set(OURS) == set(PAPER)
    assert [i.name for i in list_datasets()] == list(DATASETS)


def test_sizes_are_ours_and_the_papers(ds: Dataset) -> None:
    classes = None if ds.classes is None else len(ds.classes)
    assert (ds.n_rows, ds.n_features, classes) == OURS[ds.name]
    assert (ds.paper_rows, ds.paper_features, ds.paper_classes) == PAPER[ds.name]
    if OURS[ds.name] != PAPER[ds.name]:
        assert len(ds.notes) > 80, "a difference from the paper must be explained"
    if ds.name in SUBSTITUTES:
        assert ds.substitute_for == SUBSTITUTES[ds.name]
        assert SUBSTITUTES[ds.name] in ds.notes


def test_info_matches_loaded_data(ds: Dataset) -> None:
    info = {i.name: i for i in list_datasets()}[ds.name]
    classes = None if ds.classes is None else len(ds.classes)
    assert (info.rows, info.features, info.classes) == (ds.n_rows, ds.n_features, classes)
    assert info.raw_features == ds.space.n_features == ds.raw.shape[1]
    assert (info.paper_rows, info.paper_features, info.paper_classes) == PAPER[ds.name]
    assert info.task == ds.task and info.source == ds.source


def test_encoding_is_bounded_and_finite(ds: Dataset) -> None:
    assert ds.X.shape == (ds.n_rows, ds.space.n_encoded)
    assert np.isfinite(ds.X).all()
    assert ds.X.min() >= -1.0 and ds.X.max() <= 1.0
    assert len(ds.y) == len(ds.target) == ds.n_rows
    if ds.task == "regression":
        assert ds.classes is None and ds.y.dtype.kind == "f"
    else:
        assert ds.classes is not None
        assert np.array_equal(ds.classes, np.unique(ds.y))


def test_space_encode_of_raw_is_X(ds: Dataset) -> None:
    assert np.array_equal(ds.space.encode(ds.raw, allow_missing=False), ds.X)


def test_raw_columns_match_the_space(ds: Dataset) -> None:
    if ds.name == "faces":
        assert ds.raw.dtype == float
        return
    assert ds.raw.dtype == object
    for j, f in enumerate(ds.space.features):
        kind = str if isinstance(f, CategoricalFeature) else float
        assert all(type(v) is kind for v in ds.raw[:, j])
        if isinstance(f, CategoricalFeature):
            assert list(f.values) == sorted(set(ds.raw[:, j]))
        else:
            col = ds.raw[:, j].astype(float)
            assert (f.min, f.max) == (col.min(), col.max())
            assert (f.granularity == 1.0) == bool(np.all(col == np.round(col)))


def test_split_is_70_30_and_consistent(ds: Dataset) -> None:
    n = ds.n_rows
    assert len(ds.test_index) == math.ceil(0.3 * n)
    assert len(ds.train_index) + len(ds.test_index) == n
    assert np.array_equal(np.sort(np.concatenate([ds.train_index, ds.test_index])),
                          np.arange(n))
    assert np.array_equal(ds.X_train, ds.X[ds.train_index])
    assert np.array_equal(ds.y_test, ds.y[ds.test_index])
    if ds.classes is not None:  # stratified: every class in both parts
        assert set(np.unique(ds.y_train)) == set(np.unique(ds.y_test)) == set(ds.classes)


@pytest.mark.parametrize("name", ["iris", "adult-race", "marketing", "diabetes-progression"])
def test_split_is_reproducible_for_a_seed(name: str) -> None:
    a, b, c = load(name, random_state=7), load(name, random_state=7), load(name, 8)
    assert np.array_equal(a.test_index, b.test_index)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.test_index, c.test_index)
    assert np.array_equal(a.X, c.X)  # the seed moves the split, not the data


@pytest.mark.parametrize("name", ["circles", "moons", "blobs", "5-class"])
def test_synthetic_data_do_not_depend_on_the_seed(name: str) -> None:
    assert np.array_equal(load(name, 1).X, load(name, 2).X)


def test_loaded_arrays_are_fresh_copies() -> None:
    a = load("iris")
    a.X[:] = 5.0
    a.raw[0, 0] = -1.0
    b = load("iris")
    assert b.X.max() <= 1.0 and b.raw[0, 0] != -1.0


@pytest.mark.parametrize(("name", "features"), [("adult-income", 104), ("adult-race", 101)])
def test_adult_drop_missing(name: str, features: int) -> None:
    ds = load(name, adult_missing="drop")
    assert (ds.n_rows, ds.n_features) == (45222, features)
    assert not (ds.raw == "?").any()
    assert "workclass=Never-worked" not in ds.space.encoded_names
    default = load(name)
    assert "workclass=?" in default.space.encoded_names
    assert "workclass=Never-worked" in default.space.encoded_names


def test_adult_race_has_income_as_a_feature() -> None:
    ds = load("adult-race")
    assert "race" not in ds.space.names
    assert ds.space.names[-1] == "income"
    assert ds.classes is not None
    assert ds.classes.tolist() == ["Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black",
                                  "Other", "White"]


def test_faces_are_the_orl_images() -> None:
    ds = load("faces")
    assert ds.raw.shape == (400, 112 * 92)
    assert ds.raw.min() >= 0 and ds.raw.max() <= 255
    assert np.array_equal(np.bincount(ds.y)[1:], np.full(40, 10))


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DatasetError) as err:
        load("steak-survey")
    for name in ("adult-income", "mushrooms", "faces"):
        assert name in str(err.value)


def test_bad_adult_missing_option() -> None:
    with pytest.raises(ConfigurationError, match="adult_missing"):
        load("adult-income", adult_missing="impute")


def test_stored_files_match_provenance() -> None:
    record = provenance()
    stored = {p.name for p in DATA_DIR.iterdir() if p.name != "PROVENANCE.json"}
    assert stored == set(record)
    for fname, meta in record.items():
        assert sha256(fname) == meta["sha256"], fname
        for key in ("package", "version", "path", "upstream", "licence", "rows"):
            assert meta[key], f"{fname}: {key} missing"
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir())
    assert total < 10 * 2**20

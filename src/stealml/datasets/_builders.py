"""One builder per data set: each returns the raw table, its target and column kinds.

Builders only read (the stored files, or scikit-learn's bundled and generated data); the
common steps (feature space, encoding, split) live in :mod:`stealml.datasets`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import datasets as skd

from stealml.datasets import _columns as cols
from stealml.datasets._files import read_faces, read_table
from stealml.exceptions import ConfigurationError

SYNTHETIC_SEED = 0
ADULT_MISSING_MODES = ("category", "drop")


@dataclass(frozen=True)
class Table:
    """A raw table before encoding: ``raw`` is an object array (float array for faces)."""

    names: tuple[str, ...]
    raw: np.ndarray
    target: np.ndarray
    categorical: frozenset[str]


@dataclass(frozen=True)
class Options:
    """Loader options shared by every builder (most builders ignore them)."""

    adult_missing: str = "category"

    def __post_init__(self) -> None:
        if self.adult_missing not in ADULT_MISSING_MODES:
            raise ConfigurationError(
                f"adult_missing must be one of {', '.join(ADULT_MISSING_MODES)}, "
                f"not {self.adult_missing!r}")


def _numeric_table(names: Sequence[str], X: np.ndarray, y: np.ndarray) -> Table:
    raw = np.asarray(X, dtype=float).astype(object)
    return Table(tuple(names), raw, np.asarray(y), frozenset())


def _xnames(n: int) -> list[str]:
    return [f"x{i}" for i in range(n)]


def circles(options: Options) -> Table:
    """sklearn ``make_circles``: 5,000 points, noise 0.1, factor 0.5."""
    X, y = skd.make_circles(n_samples=5000, noise=0.1, factor=0.5,
                            random_state=SYNTHETIC_SEED)
    return _numeric_table(_xnames(2), X, y)


def moons(options: Options) -> Table:
    """sklearn ``make_moons``: 5,000 points, noise 0.1."""
    X, y = skd.make_moons(n_samples=5000, noise=0.1, random_state=SYNTHETIC_SEED)
    return _numeric_table(_xnames(2), X, y)


def blobs(options: Options) -> Table:
    """sklearn ``make_blobs``: 5,000 points, 3 centres, standard deviation 1."""
    X, y = skd.make_blobs(n_samples=5000, n_features=2, centers=3, cluster_std=1.0,
                          random_state=SYNTHETIC_SEED)
    return _numeric_table(_xnames(2), X, y)


def five_class(options: Options) -> Table:
    """sklearn ``make_classification``: 1,000 points, 20 features (5 informative), 5 classes."""
    X, y = skd.make_classification(n_samples=1000, n_features=20, n_informative=5,
                                   n_redundant=2, n_classes=5,
                                   random_state=SYNTHETIC_SEED)
    return _numeric_table(_xnames(20), X, y)


def iris(options: Options) -> Table:
    """scikit-learn's bundled Iris."""
    bunch = skd.load_iris()
    return _numeric_table(bunch.feature_names, bunch.data, bunch.target)


def digits(options: Options) -> Table:
    """scikit-learn's bundled Digits (8x8 images, pixel values 0..16)."""
    bunch = skd.load_digits()
    return _numeric_table([f"pixel_{i // 8}_{i % 8}" for i in range(64)],
                          bunch.data, bunch.target)


def diabetes_progression(options: Options) -> Table:
    """scikit-learn's bundled diabetes regression data, unscaled."""
    bunch = skd.load_diabetes(scaled=False)
    return _numeric_table(bunch.feature_names, bunch.data, bunch.target.astype(float))


def _csv_table(fname: str, categorical: Collection[str],
               labels: Mapping[str, object] | None = None,
               keep: np.ndarray | None = None) -> Table:
    """A stored table: its last column is the target, optionally relabelled."""
    header, rows = read_table(fname)
    cells = np.array(rows, dtype=object)
    if keep is not None:
        cells = cells[keep]
    raw = np.empty((cells.shape[0], len(header) - 1), dtype=object)
    for j, name in enumerate(header[:-1]):
        col = cells[:, j]
        raw[:, j] = col if name in categorical else col.astype(float)
    target = cells[:, -1]
    if labels is not None:
        target = np.array([labels[v] for v in target])
    return Table(tuple(header[:-1]), raw, np.asarray(target.tolist()), frozenset(categorical))


def _adult_keep(options: Options) -> np.ndarray | None:
    if options.adult_missing == "category":
        return None
    _, rows = read_table("adult.csv.gz")
    return np.array(["?" not in r for r in rows])


def adult_income(options: Options) -> Table:
    """UCI Adult (train + test, 48,842 rows), target income."""
    return _csv_table("adult.csv.gz", cols.ADULT_CATEGORICAL, keep=_adult_keep(options))


def adult_race(options: Options) -> Table:
    """UCI Adult with target race; income becomes a (categorical) feature."""
    t = adult_income(options)
    j = t.names.index("race")
    raw = np.column_stack([np.delete(t.raw, j, axis=1), t.target.astype(object)])
    names = (*tuple(n for n in t.names if n != "race"), "income")
    return Table(names, raw, np.asarray(t.raw[:, j].tolist()), t.categorical)


def breast_cancer(options: Options) -> Table:
    """Original Wisconsin breast cancer data, 683 complete rows, 9 features."""
    return _csv_table("breast-cancer-wisconsin.csv.gz", (),
                      {"positive": "malignant", "negative": "benign"})


def diabetes(options: Options) -> Table:
    """Pima Indians diabetes, 768 rows, 8 features."""
    return _csv_table("pima.csv.gz", ())


def mushrooms(options: Options) -> Table:
    """UCI Mushroom, KEEL copy (rows with a missing stalk-root removed), 22 categoricals."""
    return _csv_table("mushroom.csv.gz", cols.MUSHROOM_COLUMNS[:-1],
                      {"e": "edible", "p": "poisonous"})


def german_credit(options: Options) -> Table:
    """UCI Statlog German credit, 1,000 rows, 7 numeric and 13 categorical features."""
    categorical = [n for n in cols.GERMAN_COLUMNS[:-1] if n not in cols.GERMAN_NUMERIC]
    return _csv_table("german.csv.gz", categorical, {"1": "good", "2": "bad"})


def spambase(options: Options) -> Table:
    """UCI Spambase, KEEL copy (4,597 rows), 57 numeric features, target spam 0/1."""
    return _csv_table("spambase.csv.gz", (), {"0": 0, "1": 1})


def marketing(options: Options) -> Table:
    """KEEL Marketing survey: 13 coded demographic answers, target income bracket 1..9."""
    return _csv_table("marketing.csv.gz", cols.MARKETING_COLUMNS[:-1],
                      {str(k): k for k in range(1, 10)})


def contraceptive(options: Options) -> Table:
    """UCI Contraceptive Method Choice survey: 2 numeric, 7 categorical, 3 classes."""
    categorical = [n for n in cols.CONTRACEPTIVE_COLUMNS[:-1]
                   if n not in cols.CONTRACEPTIVE_NUMERIC]
    return _csv_table("contraceptive.csv.gz", categorical,
                      {"1": "no-use", "2": "long-term", "3": "short-term"})


def faces(options: Options) -> Table:
    """AT&T (ORL) faces: 400 images of 112 x 92 pixels, 40 subjects (1..40)."""
    images, target = read_faces()
    n, h, w = images.shape
    names = tuple(f"pixel_{r}_{c}" for r in range(h) for c in range(w))
    raw = images.reshape(n, h * w).astype(float)
    return Table(names, raw, target.astype(int), frozenset())

"""Offline data set loaders with provenance: the paper's Table 3 and the tree/inversion data.

Every data set is either generated (scikit-learn, fixed seed), bundled with scikit-learn,
or stored compressed in ``stealml/datasets/data/`` (see ``PROVENANCE.json`` there and
``docs/datasets.md``). Nothing is downloaded.

Pre-processing follows the paper (section 4.1): rows with missing values are dropped
(Adult's '?' is kept as a category by default, which reproduces the paper's widths),
categorical features are one-hot encoded, numeric features scaled to [-1, 1] over their
observed range, and a random 70% is kept for training, the rest for testing.

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 4.1, Table 3, Table 5 and appendix B.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.model_selection import train_test_split

from stealml.datasets._builders import ADULT_MISSING_MODES, Options
from stealml.datasets._encoding import infer_space
from stealml.datasets._files import provenance
from stealml.datasets._registry import REGISTRY, Spec
from stealml.exceptions import DatasetError
from stealml.space import FeatureSpace

__all__ = [
    "ADULT_MISSING_MODES",
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "list_datasets",
    "load",
    "provenance",
]

DATASETS: tuple[str, ...] = tuple(REGISTRY)

TEST_SIZE = 0.3


@dataclass
class Dataset:
    """A loaded data set: the raw table, its feature space, the encoding and a split.

    Attributes
    ----------
    name, task : str
        Registry name; ``"classification"`` or ``"regression"``.
    raw : ndarray of shape (n_rows, n_features)
        The raw table after dropping rows with missing values: an ``object`` array with
        floats in continuous columns and strings in categorical ones (for ``faces``, whose
        10,304 features are all continuous, a float array).
    target : ndarray of shape (n_rows,)
        Labels (str or int), or floats for regression.
    space : FeatureSpace
        The raw features: observed [min, max] (granularity 1 where integer-valued) or
        observed categories, sorted.
    X, y : ndarray
        ``space.encode(raw)`` and the target.
    X_train, X_test, y_train, y_test : ndarray
        A seeded 70/30 split (stratified for classification).
    train_index, test_index : ndarray of int
        Rows of ``raw``/``X`` in each part of the split.
    classes : ndarray or None
        Sorted unique labels; ``None`` for regression.
    source : str
        Where the data come from.
    paper_rows, paper_features, paper_classes : int or None
        The paper's numbers (Table 3, or Table 5 for tree-only sets); ``None`` if absent.
    notes : str
        How and why this data set differs from the paper's.
    substitute_for : str or None
        The paper's data set that this one stands in for, if any.
    """

    name: str
    task: str
    raw: np.ndarray
    target: np.ndarray
    space: FeatureSpace
    X: np.ndarray
    y: np.ndarray
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    classes: np.ndarray | None
    source: str
    paper_rows: int | None
    paper_features: int | None
    paper_classes: int | None
    notes: str
    substitute_for: str | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of encoded (model-space) columns."""
        return int(self.X.shape[1])


@dataclass(frozen=True)
class DatasetInfo:
    """Summary of a data set, ours beside the paper's.

    ``features`` is the encoded width; ``raw_features`` the number of raw features.
    """

    name: str
    rows: int
    features: int
    classes: int | None
    task: str
    source: str
    paper_rows: int | None
    paper_features: int | None
    paper_classes: int | None
    raw_features: int
    substitute_for: str | None = None


def _spec(name: str) -> Spec:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise DatasetError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}") from None


@lru_cache(maxsize=8)
def _prepared(name: str, options: Options) -> tuple[np.ndarray, np.ndarray, FeatureSpace,
                                                    np.ndarray]:
    """Raw table, target, space and encoding of one data set (cached, read-only)."""
    table = _spec(name).builder(options)
    space = infer_space(table.names, table.raw, table.categorical)
    X = space.encode(table.raw, allow_missing=False)
    for arr in (table.raw, table.target, X):
        arr.setflags(write=False)
    return table.raw, table.target, space, X


def _split(n: int, target: np.ndarray, classification: bool,
           random_state: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(n)
    train, test = train_test_split(index, test_size=TEST_SIZE, random_state=random_state,
                                   stratify=target if classification else None)
    return np.asarray(train), np.asarray(test)


def load(name: str, random_state: int = 0, *, adult_missing: str = "category") -> Dataset:
    """Load a data set, encoded and split as in the paper.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    random_state : int, default 0
        Seed of the 70/30 train/test split. (Synthetic data are always generated with
        seed 0, so every seed splits the same data.)
    adult_missing : {"category", "drop"}, default "category"
        For ``adult-income`` and ``adult-race``: keep '?' as a category of its own (the
        paper's widths, 108 and 105) or drop the rows holding one (104 and 101).
        Ignored by the other data sets.

    Returns
    -------
    Dataset
        Fresh arrays (safe to modify) for the split, the encoding and the raw table.

    Raises
    ------
    DatasetError
        Unknown name, or a stored file that cannot be read.
    ConfigurationError
        An ``adult_missing`` other than "category" or "drop".

    Examples
    --------
    >>> ds = load("iris", random_state=1)
    >>> ds.X.shape, ds.X_train.shape, ds.classes.tolist()
    ((150, 4), (105, 4), [0, 1, 2])
    """
    spec = _spec(name)
    options = Options(adult_missing=adult_missing if name.startswith("adult") else "category")
    raw, target, space, X = _prepared(name, options)
    classification = spec.task == "classification"
    train, test = _split(X.shape[0], target, classification, random_state)
    X, y = X.copy(), target.copy()
    return Dataset(
        name=name, task=spec.task, raw=raw.copy(), target=target.copy(), space=space,
        X=X, y=y, X_train=X[train], X_test=X[test], y_train=y[train], y_test=y[test],
        train_index=train, test_index=test,
        classes=np.unique(y) if classification else None, source=spec.source,
        paper_rows=spec.paper_rows, paper_features=spec.paper_features,
        paper_classes=spec.paper_classes, notes=spec.notes,
        substitute_for=spec.substitute_for)


def list_datasets() -> list[DatasetInfo]:
    """Every data set with its size (default options) beside the paper's.

    Returns
    -------
    list of DatasetInfo
        In registry order; nothing is loaded.

    Examples
    --------
    >>> [i.features for i in list_datasets() if i.name.startswith("adult")]
    [108, 105]
    """
    return [DatasetInfo(name=s.name, rows=s.rows, features=s.features, classes=s.classes,
                        task=s.task, source=s.source, paper_rows=s.paper_rows,
                        paper_features=s.paper_features, paper_classes=s.paper_classes,
                        raw_features=s.raw_features, substitute_for=s.substitute_for)
            for s in REGISTRY.values()]

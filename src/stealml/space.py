"""FeatureSpace: the named input features of a prediction API.

A space lists each feature as continuous (a range, optionally a granularity such as 1 for
integers) or categorical (a list of values). It knows how to

* sample raw rows uniformly (seeded),
* encode raw rows into the numeric *model space* the paper uses: one-hot columns for a
  categorical feature, a continuous feature scaled linearly from [min, max] to [-1, 1],
* decode model-space vectors back into raw rows,
* read and write its JSON form::

    {"features": [{"name": "age", "type": "continuous", "min": 17, "max": 90},
                  {"name": "sex", "type": "categorical", "values": ["F", "M"]}]}

Raw rows are 2-D ``object`` arrays with one column per feature: floats for continuous
features, strings for categorical ones. A missing value (an incomplete query) is ``None``
or NaN in a raw row and NaN in every model-space column of that feature.

References: Tramèr et al., USENIX Security 2016, section 3 (feature extraction) and 5.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stealml.exceptions import (
    FeatureCountError,
    NonFiniteInputError,
    SpaceDefinitionError,
    UnknownCategoryError,
)
from stealml.random import RandomState, as_generator

__all__ = ["CategoricalFeature", "ContinuousFeature", "Feature", "FeatureSpace", "is_missing"]


@dataclass(frozen=True)
class ContinuousFeature:
    """A numeric feature in ``[min, max]``; ``granularity`` (e.g. 1) snaps sampled values."""

    name: str
    min: float
    max: float
    granularity: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise SpaceDefinitionError(f"feature {self.name!r}: min and max must be finite")
        if self.min > self.max:
            raise SpaceDefinitionError(
                f"feature {self.name!r}: min {self.min} is greater than max {self.max}"
            )
        if self.granularity is not None and not self.granularity > 0:
            raise SpaceDefinitionError(f"feature {self.name!r}: granularity must be positive")

    @property
    def width(self) -> int:
        return 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "continuous",
                             "min": self.min, "max": self.max}
        if self.granularity is not None:
            d["granularity"] = self.granularity
        return d


@dataclass(frozen=True)
class CategoricalFeature:
    """A feature taking one of ``values``; encoded as one-hot columns."""

    name: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise SpaceDefinitionError(f"feature {self.name!r}: a categorical needs values")
        if len(set(self.values)) != len(self.values):
            raise SpaceDefinitionError(f"feature {self.name!r}: values are not unique")

    @property
    def width(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": "categorical", "values": list(self.values)}


Feature = ContinuousFeature | CategoricalFeature


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _category_text(value: object) -> str:
    """How a non-string category value is spelled: 3.0 -> "3", True -> "True"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def is_missing(value: object) -> bool:
    """True for ``None`` and float NaN: the two spellings of a missing value."""
    if value is None:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(float(value))


class FeatureSpace:
    """An ordered set of named features, with sampling, encoding and a JSON form.

    Parameters
    ----------
    features : sequence of ContinuousFeature or CategoricalFeature
        The features, in the order the API takes them.

    Examples
    --------
    >>> space = FeatureSpace.from_dict({"features": [
    ...     {"name": "age", "type": "continuous", "min": 17, "max": 90},
    ...     {"name": "sex", "type": "categorical", "values": ["F", "M"]}]})
    >>> space.encode([[17, "M"]]).tolist()
    [[-1.0, 0.0, 1.0]]
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        features = tuple(features)
        if not features:
            raise SpaceDefinitionError("a feature space needs at least one feature")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise SpaceDefinitionError(f"feature names are not unique: {', '.join(dup)}")
        self.features: tuple[Feature, ...] = features
        offsets = np.cumsum([0] + [f.width for f in features])
        self._slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(offsets)]
        self._index = {f.name: i for i, f in enumerate(features)}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def continuous(cls, n_features: int, low: float = -1.0, high: float = 1.0,
                   names: Sequence[str] | None = None) -> FeatureSpace:
        """A space of ``n_features`` continuous features in ``[low, high]``.

        With the default ``[-1, 1]`` the encoding is the identity: this is the space
        assumed for a model file that comes without one.
        """
        if n_features < 1:
            raise SpaceDefinitionError("a feature space needs at least one feature")
        names = list(names) if names is not None else [f"x{i}" for i in range(n_features)]
        if len(names) != n_features:
            raise SpaceDefinitionError(f"{len(names)} names given for {n_features} features")
        return cls([ContinuousFeature(n, float(low), float(high)) for n in names])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        """Build a space from its JSON form (see the module docstring)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), list):
            raise SpaceDefinitionError('a feature space must be {"features": [...]}')
        out: list[Feature] = []
        for i, f in enumerate(data["features"]):
            if not isinstance(f, Mapping) or "name" not in f or "type" not in f:
                raise SpaceDefinitionError(f"feature #{i} needs a name and a type")
            name, kind = str(f["name"]), f["type"]
            try:
                if kind == "continuous":
                    gran = f.get("granularity")
                    out.append(ContinuousFeature(name, float(f["min"]), float(f["max"]),
                                                 None if gran is None else float(gran)))
                elif kind == "categorical":
                    values = f["values"]
                    if not isinstance(values, list):
                        raise SpaceDefinitionError(f"feature {name!r}: values must be a list")
                    out.append(CategoricalFeature(name, tuple(str(v) for v in values)))
                else:
                    raise SpaceDefinitionError(
                        f"feature {name!r}: type must be 'continuous' or 'categorical', "
                        f"not {kind!r}")
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, SpaceDefinitionError):
                    raise
                raise SpaceDefinitionError(f"feature {name!r}: {exc}") from exc
        return cls(out)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpace:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceDefinitionError(f"feature space is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpace:
        """Read a space from a JSON file."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SpaceDefinitionError(f"cannot read feature space {path}: {exc}") from exc
        return cls.from_json(text)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(indent=2) + "\n")

    # -- shape ----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        """Number of raw features."""
        return len(self.features)

    @property
    def n_encoded(self) -> int:
        """Number of model-space columns (one-hot columns counted one by one)."""
        return self._slices[-1].stop

    @property
    def encoded_names(self) -> list[str]:
        out: list[str] = []
        for f in self.features:
            if isinstance(f, CategoricalFeature):
                out.extend(f"{f.name}={v}" for v in f.values)
            else:
                out.append(f.name)
        return out

    def columns(self, feature: str | int) -> slice:
        """The model-space columns of one feature."""
        i = self._index[feature] if isinstance(feature, str) else int(feature)
        return self._slices[i]

    @property
    def feature_of_column(self) -> np.ndarray:
        """For each model-space column, the index of its raw feature."""
        return np.concatenate([np.full(f.width, i) for i, f in enumerate(self.features)])

    @property
    def categorical_columns(self) -> np.ndarray:
        """For each model-space column, whether it is a one-hot column of a categorical
        feature (a valid row holds 0 or 1 there, with a single 1 per feature)."""
        return np.concatenate([np.full(f.width, isinstance(f, CategoricalFeature))
                               for f in self.features]).astype(bool)

    def encoded_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of each model-space column: [-1, 1] or [0, 1]."""
        lo = np.zeros(self.n_encoded)
        hi = np.ones(self.n_encoded)
        for f, s in zip(self.features, self._slices, strict=False):
            if isinstance(f, ContinuousFeature):
                lo[s] = -1.0 if f.max > f.min else 0.0
                hi[s] = 1.0 if f.max > f.min else 0.0
        return lo, hi

    @property
    def is_identity(self) -> bool:
        """True when encoding changes nothing: all features continuous in [-1, 1]."""
        return all(isinstance(f, ContinuousFeature) and f.min == -1.0 and f.max == 1.0
                   for f in self.features)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSpace) and self.features == other.features

    def __hash__(self) -> int:
        return hash(self.features)

    def __repr__(self) -> str:
        n_cat = sum(isinstance(f, CategoricalFeature) for f in self.features)
        return (f"FeatureSpace({self.n_features} features, {n_cat} categorical, "
                f"{self.n_encoded} encoded columns)")

    # -- raw rows -------------------------------------------------------------------------
    def _table(self, rows: Any) -> np.ndarray:
        """Rows as a 2-D array (object, or float when numeric) of ``n_features`` columns."""
        if isinstance(rows, Mapping):
            rows = [rows]
        if not isinstance(rows, np.ndarray):
            rows = list(rows)
            if rows and isinstance(rows[0], Mapping):
                rows = [self._row_from_mapping(r) for r in rows]
        arr = np.asarray(rows)
        if arr.dtype.kind not in "fiub":
            arr = np.asarray(rows, dtype=object)
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, self.n_features)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise FeatureCountError(f"X must be 2-D, but has {arr.ndim} dimensions")
        if arr.shape[1] != self.n_features:
            raise FeatureCountError(
                f"X has {arr.shape[1]} features, but the space has {self.n_features}")
        return arr

    def _row_from_mapping(self, row: Mapping[str, Any]) -> list[Any]:
        unknown = sorted(set(row) - set(self._index))
        if unknown:
            raise FeatureCountError(f"unknown feature names: {', '.join(unknown)}")
        return [row.get(n) for n in self.names]

    @staticmethod
    def _numbers(f: ContinuousFeature, col: np.ndarray, allow_missing: bool) -> np.ndarray:
        """A continuous column as floats, NaN where missing."""
        if col.dtype == object:
            col = np.where(col == None, np.nan, col)  # noqa: E711 (elementwise)
        try:
            x = np.asarray(col, dtype=float)
        except (TypeError, ValueError) as exc:
            bad = next(v for v in col if not _is_number(v))
            raise NonFiniteInputError(
                f"feature {f.name!r} is continuous, but got {bad!r}") from exc
        if np.isinf(x).any():
            raise NonFiniteInputError(f"feature {f.name!r} holds an infinity")
        if not allow_missing and np.isnan(x).any():
            raise NonFiniteInputError(f"feature {f.name!r} is missing")
        return x

    @staticmethod
    def _codes(f: CategoricalFeature, col: np.ndarray, allow_missing: bool) -> np.ndarray:
        """A categorical column as value indices, -1 where missing."""
        lookup = {v: k for k, v in enumerate(f.values)}
        codes = np.empty(len(col), dtype=np.intp)
        for i, v in enumerate(col):
            k = lookup.get(v) if isinstance(v, str) else None
            if k is None:
                if is_missing(v):
                    if not allow_missing:
                        raise NonFiniteInputError(f"feature {f.name!r} is missing")
                    k = -1
                else:
                    k = lookup.get(_category_text(v), -2)
                    if k == -2:
                        raise UnknownCategoryError(
                            f"feature {f.name!r} has no category {v!r}; expected one of "
                            f"{', '.join(f.values[:10])}" + (" ..." if len(f.values) > 10
                                                              else ""))
            codes[i] = k
        return codes

    def as_raw(self, rows: Any, allow_missing: bool = True) -> np.ndarray:
        """Validate raw rows and return them as an ``object`` array, one column a feature.

        ``rows`` may be a 2-D array or list of lists in feature order, or a list of dicts
        keyed by feature name (absent keys are missing values). Missing values come back
        as None, continuous values as float, categories as str.

        Raises
        ------
        FeatureCountError, UnknownCategoryError, NonFiniteInputError
        """
        arr = self._table(rows)
        out = np.empty(arr.shape, dtype=object)
        for j, f in enumerate(self.features):
            if isinstance(f, CategoricalFeature):
                codes = self._codes(f, arr[:, j], allow_missing)
                out[:, j] = [None if k < 0 else f.values[k] for k in codes]
            else:
                x = self._numbers(f, arr[:, j], allow_missing)
                out[:, j] = [None if np.isnan(v) else float(v) for v in x]
        return out

    # -- encoding -------------------------------------------------------------------------
    def encode(self, rows: Any, allow_missing: bool = True) -> np.ndarray:
        """Raw rows -> model-space float array; missing values become NaN columns."""
        arr = self._table(rows)
        Z = np.zeros((arr.shape[0], self.n_encoded))
        for j, (f, s) in enumerate(zip(self.features, self._slices, strict=False)):
            if isinstance(f, CategoricalFeature):
                codes = self._codes(f, arr[:, j], allow_missing)
                have = codes >= 0
                Z[np.flatnonzero(have), s.start + codes[have]] = 1.0
                Z[~have, s] = np.nan
            else:
                Z[:, s.start] = self._scale(f, self._numbers(f, arr[:, j], allow_missing))
        return Z

    @staticmethod
    def _scale(f: ContinuousFeature, x: np.ndarray) -> np.ndarray:
        if f.max == f.min:
            return np.zeros_like(x) * x  # keeps NaN
        with np.errstate(over="ignore"):  # a huge input becomes inf; callers reject it
            return 2.0 * (x - f.min) / (f.max - f.min) - 1.0

    @staticmethod
    def _unscale(f: ContinuousFeature, z: np.ndarray) -> np.ndarray:
        x = f.min + (np.asarray(z, dtype=float) + 1.0) * (f.max - f.min) / 2.0
        if f.granularity is not None:
            x = f.min + np.round((x - f.min) / f.granularity) * f.granularity
        return np.clip(x, f.min, f.max)

    def decode(self, Z: Any) -> np.ndarray:
        """Model-space vectors -> raw rows (nearest category, clipped and snapped values)."""
        Z = np.asarray(Z, dtype=float)
        if Z.ndim == 1:
            Z = Z.reshape(1, -1)
        if Z.ndim != 2 or Z.shape[1] != self.n_encoded:
            raise FeatureCountError(
                f"X has {Z.shape[-1]} features, but the space has {self.n_encoded} "
                "encoded columns")
        out = np.empty((Z.shape[0], self.n_features), dtype=object)
        for j, (f, s) in enumerate(zip(self.features, self._slices, strict=False)):
            block = Z[:, s]
            miss = np.isnan(block).all(axis=1)
            if isinstance(f, CategoricalFeature):
                idx = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
                vals: Iterable[Any] = (f.values[k] for k in idx)
            else:
                vals = self._unscale(f, block[:, 0])
            for i, v in enumerate(vals):
                out[i, j] = None if miss[i] else (v if isinstance(v, str) else float(v))
        return out

    # -- sampling -------------------------------------------------------------------------
    def sample(self, n: int, random_state: RandomState = None,
               missing_rate: float = 0.0) -> np.ndarray:
        """``n`` raw rows drawn uniformly: each continuous value in [min, max] (snapped to
        its granularity), each category with equal chance; with ``missing_rate`` > 0 each
        value is missing with that probability."""
        rng = as_generator(random_state)
        out = np.empty((n, self.n_features), dtype=object)
        for j, f in enumerate(self.features):
            if isinstance(f, CategoricalFeature):
                idx = rng.integers(0, len(f.values), size=n)
                out[:, j] = [f.values[k] for k in idx]
            else:
                if f.granularity is not None:
                    steps = int(np.floor((f.max - f.min) / f.granularity + 1e-9))
                    x = f.min + rng.integers(0, steps + 1, size=n) * f.granularity
                else:
                    x = rng.uniform(f.min, f.max, size=n)
                out[:, j] = [float(v) for v in x]
        if missing_rate > 0:
            out[rng.random(out.shape) < missing_rate] = None
        return out

    def sample_encoded(self, n: int,
                       random_state: RandomState = None) -> np.ndarray:
        """``n`` uniform raw rows, encoded into the model space."""
        return self.encode(self.sample(n, random_state), allow_missing=False)

"""Server-side feature extraction: what an ML service does to a raw input before its model.

Categorical features are one-hot encoded and numeric ones scaled to [-1, 1] (the
:class:`~stealml.space.FeatureSpace` encoding), except the numeric features given quantile
bins: those become k one-hot bin columns, with boundaries learned from the training data
(Amazon's default, k = 10). With ``missing_indicators`` one 0/1 column per feature is
appended that says the feature was omitted (BigML's "missing-value predictors"); the
feature's own columns are then 0.

A served model carries its extraction in its file's facts (``meta["extraction"]``, the
dict of :meth:`FeatureExtraction.to_dict`) or in a JSON file named in the service
settings. The bins are never published: finding them is the attacker's job.

References: Tramèr et al., USENIX Security 2016, section 5.2 and 5.3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stealml.exceptions import SpaceDefinitionError
from stealml.space import ContinuousFeature, FeatureSpace

__all__ = ["FeatureExtraction"]


class FeatureExtraction:
    """Maps raw rows of a space to the columns a model was trained on.

    Parameters
    ----------
    space : FeatureSpace
        The published input features.
    bins : mapping of str to sequence of float, optional
        Inner bin boundaries of quantile-binned numeric features: a value v falls in bin
        i when ``edges[i-1] <= v < edges[i]`` (``len(edges) + 1`` bins).
    missing_indicators : bool
        Append a column per feature that is 1 where the feature is missing.

    Examples
    --------
    >>> space = FeatureSpace.continuous(1, 0, 10, names=["x"])
    >>> ex = FeatureExtraction(space, bins={"x": [2.5, 5.0]})
    >>> ex.transform([[3.0]]).tolist()
    [[0.0, 1.0, 0.0]]
    """

    def __init__(self, space: FeatureSpace, bins: Mapping[str, Sequence[float]] | None = None,
                 missing_indicators: bool = False) -> None:
        self.space = space
        self.bins = {k: np.asarray(v, dtype=float) for k, v in (bins or {}).items()}
        self.missing_indicators = missing_indicators
        for name, edges in self.bins.items():
            if name not in space.names or not isinstance(
                    space.features[space.names.index(name)], ContinuousFeature):
                raise SpaceDefinitionError(f"only continuous features are binned, not {name!r}")
            if edges.ndim != 1 or np.any(np.diff(edges) <= 0):
                raise SpaceDefinitionError(f"bin boundaries of {name!r} must increase")

    @classmethod
    def fit(cls, space: FeatureSpace, rows: Any, n_bins: int = 10,
            features: Sequence[str] | None = None,
            missing_indicators: bool = False) -> FeatureExtraction:
        """Learn ``n_bins`` quantile bins of each numeric feature (all, or ``features``)
        from training rows (raw)."""
        raw = space.as_raw(rows)
        names = features if features is not None else [
            f.name for f in space.features if isinstance(f, ContinuousFeature)]
        bins: dict[str, list[float]] = {}
        for name in names:
            col = raw[:, space.names.index(name)]
            x = np.asarray([v for v in col if v is not None], dtype=float)
            q = np.quantile(x, np.arange(1, n_bins) / n_bins) if len(x) else np.empty(0)
            bins[name] = np.unique(q).tolist()
        return cls(space, bins, missing_indicators)

    @property
    def is_identity(self) -> bool:
        """True when the model takes the space's own encoding."""
        return not self.bins and not self.missing_indicators

    @property
    def n_columns(self) -> int:
        n = sum(len(self.bins[f.name]) + 1 if f.name in self.bins else f.width
                for f in self.space.features)
        return n + (self.space.n_features if self.missing_indicators else 0)

    def transform(self, rows: Any, allow_missing: bool = True) -> np.ndarray:
        """Raw rows -> model input; NaN in the columns of a missing feature (0 with
        missing indicators, which then say it is missing)."""
        raw = self.space.as_raw(rows, allow_missing=allow_missing)
        Z = self.space.encode(raw)
        if self.is_identity:
            return Z
        blocks = []
        for j, f in enumerate(self.space.features):
            if f.name in self.bins:
                x = np.asarray([np.nan if v is None else v for v in raw[:, j]], dtype=float)
                onehot = np.zeros((len(x), len(self.bins[f.name]) + 1))
                have = ~np.isnan(x)
                onehot[np.flatnonzero(have), np.digitize(x[have], self.bins[f.name])] = 1.0
                onehot[~have] = np.nan
                blocks.append(onehot)
            else:
                blocks.append(Z[:, self.space.columns(j)])
        out = np.hstack(blocks)
        if self.missing_indicators:
            missing = (raw == None).astype(float)  # noqa: E711 (elementwise)
            out = np.hstack([np.nan_to_num(out, nan=0.0), missing])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"bins": {k: v.tolist() for k, v in self.bins.items()},
                "missing_indicators": self.missing_indicators}

    @classmethod
    def from_dict(cls, space: FeatureSpace, data: Mapping[str, Any]) -> FeatureExtraction:
        if not isinstance(data, Mapping):
            raise SpaceDefinitionError("a feature extraction must be a JSON object")
        return cls(space, data.get("bins") or {}, bool(data.get("missing_indicators")))

    @classmethod
    def load(cls, space: FeatureSpace, path: str | Path) -> FeatureExtraction:
        try:
            return cls.from_dict(space, json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpaceDefinitionError(f"cannot read the feature extraction {path}: "
                                       f"{exc}") from exc


"""What the two tree path-finding attacks share: grids, probes, the extracted leaves.

The attacker speaks in raw features: a query is a row of raw values (``None`` where the
feature is left out), encoded through the API's FeatureSpace. A continuous feature is
searched on a grid of step ``max(epsilon, granularity)``; a threshold found between two
neighbouring grid values is placed half-way between them.

References: Tramèr et al., USENIX Security 2016, section 4.2.1 (LINE SEARCH, CATEGORY SPLIT).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from stealml.attacks.base import Querier
from stealml.exceptions import OracleCapabilityError, UnsupportedModelError
from stealml.models.tree import ExtractedTreeClassifier, ExtractedTreeRegressor
from stealml.oracles.base import Oracle
from stealml.space import ContinuousFeature, FeatureSpace

__all__ = ["Asking", "Exhausted", "Grid", "Leaf", "Probe", "TreeQuerier", "build_tree", "drive",
           "grids", "holds", "with_value"]

Row = list[Any]
Predicate = tuple[float, float] | frozenset[str]
T = TypeVar("T")
# a search that yields the rows it needs answered, is sent their probes, returns a T
Asking = Generator[list[Row], list["Probe"], T]


def with_value(row: Row, i: int, value: Any) -> Row:
    """A copy of ``row`` with feature ``i`` set to ``value``."""
    out = list(row)
    out[i] = value
    return out


class Exhausted(Exception):
    """The budget ran out in the middle of a search (internal control flow)."""


@dataclass(frozen=True)
class Grid:
    """The values a continuous feature is searched on: ``lo + k * step``, capped at ``hi``."""

    lo: float
    hi: float
    step: float

    @property
    def size(self) -> int:
        if self.hi <= self.lo:
            return 1
        n = math.floor((self.hi - self.lo) / self.step + 1e-9) + 1
        return n + (1 if self.lo + (n - 1) * self.step < self.hi - 1e-12 else 0)

    def value(self, k: int) -> float:
        return float(min(self.lo + k * self.step, self.hi))

    def index(self, x: float) -> int:
        return int(np.clip(round((x - self.lo) / self.step), 0, self.size - 1))

    def span(self, lo: float, hi: float) -> tuple[int, int]:
        """First and last grid index with ``lo < value <= hi``."""
        first = 0 if math.isinf(lo) else max(0, math.floor((lo - self.lo) / self.step))
        while first < self.size - 1 and self.value(first) <= lo:
            first += 1
        last = self.size - 1 if math.isinf(hi) else min(
            self.size - 1, math.ceil((hi - self.lo) / self.step))
        while last > 0 and self.value(last) > hi:
            last -= 1
        return first, last

    def cut(self, k: int) -> float:
        """The threshold between grid values ``k`` and ``k + 1``."""
        return (self.value(k) + self.value(k + 1)) / 2.0


def grids(space: FeatureSpace, epsilon: float) -> list[Grid | None]:
    """A grid per continuous feature (None for categorical ones)."""
    out: list[Grid | None] = []
    for f in space.features:
        if isinstance(f, ContinuousFeature):
            out.append(Grid(f.min, f.max, max(epsilon, f.granularity or 0.0)))
        else:
            out.append(None)
    return out


@dataclass(frozen=True)
class Probe:
    """One answer: the identity it leaks and the output it gives."""

    key: str
    fields: frozenset[str] | None
    label: Any
    confidence: float | None
    probabilities: list[float] | None
    value: float | None

    @property
    def signature(self) -> tuple[str, frozenset[str] | None]:
        """Identity plus the fields named: tells an internal node from a leaf."""
        return self.key, self.fields


def holds(pred: Predicate, value: Any) -> bool:
    """Whether ``value`` lies in the piece ``pred`` (a set of categories, or an interval
    ``lo < x <= hi``)."""
    if isinstance(pred, frozenset):
        return value in pred
    return value is not None and pred[0] < value <= pred[1]


@dataclass
class Leaf:
    """A leaf found by an attack: its predicates (feature index -> predicate), output."""

    probe: Probe
    predicates: dict[int, Predicate] = field(default_factory=dict)
    complete: bool = False

    def violated(self, row: Row, limit: int | None = None) -> list[int]:
        """Features whose predicate ``row`` breaks (the first ``limit`` of them)."""
        out = []
        for i, pred in self.predicates.items():
            if not holds(pred, row[i]):
                out.append(i)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def contains(self, row: Row) -> bool:
        return not self.violated(row, limit=1)


class TreeQuerier:
    """Raw rows in, probes out, through the attack's :class:`Querier`."""

    def __init__(self, oracle: Oracle, querier: Querier) -> None:
        self.space = oracle.space
        self.querier = querier
        self.is_regressor = oracle.classes is None
        self._slices = [self.space.columns(i) for i in range(self.space.n_features)]
        self._affine = self._continuous_maps()
        self._chunks: dict[tuple[int, Any], np.ndarray] = {}

    def _continuous_maps(self) -> dict[int, tuple[float, float]]:
        """Per continuous feature, the space's linear map raw -> model space (a, b)."""
        feats = self.space.features
        lo = [f.min if isinstance(f, ContinuousFeature) else f.values[0] for f in feats]
        hi = [f.max if isinstance(f, ContinuousFeature) else f.values[0] for f in feats]
        Z = self.space.encode([lo, hi], allow_missing=False)
        out = {}
        for i, f in enumerate(feats):
            if isinstance(f, ContinuousFeature):
                z0, z1 = Z[:, self._slices[i].start]
                a = (z1 - z0) / (f.max - f.min) if f.max > f.min else 0.0
                out[i] = (float(a), float(z0 - a * f.min))
        return out

    def _chunk(self, i: int, value: Any) -> Any:
        if value is None:
            return np.nan
        if i in self._affine:
            a, b = self._affine[i]
            return a * value + b
        key = (i, value)
        if key not in self._chunks:
            row: Row = [None] * self.space.n_features
            row[i] = value
            self._chunks[key] = self.space.encode([row], allow_missing=True)[0][
                self._slices[i]]
        return self._chunks[key]

    def encode(self, rows: list[Row]) -> np.ndarray:
        """Encode raw rows as the space does (continuous values by its linear map)."""
        X = np.empty((len(rows), self.space.n_encoded))
        for i, column in enumerate(zip(*rows, strict=True)):
            if i in self._affine:
                a, b = self._affine[i]
                values = np.array([np.nan if v is None else v for v in column], dtype=float)
                X[:, self._slices[i].start] = a * values + b
            else:
                for r, value in enumerate(column):
                    X[r, self._slices[i]] = self._chunk(i, value)
        return X

    def ask(self, rows: list[Row]) -> list[Probe]:
        """Answer ``rows``; raises :class:`Exhausted` if the budget cannot pay for all."""
        if not rows:
            return []
        X = self.encode(rows)
        done, answers = self.querier.ask(X)
        if len(done) < len(rows):
            raise Exhausted
        return [p for a in answers for p in self._probes(a)]

    def _probes(self, answers: Any) -> list[Probe]:
        if answers.ids is None:
            raise OracleCapabilityError("the API's answers carry no identity (label and "
                                        "confidence): a tree attack cannot run")
        out = []
        for i in range(len(answers)):
            raw = answers.raw[i] if answers.raw is not None else None
            raw = raw if isinstance(raw, dict) else {}
            fields = raw.get("fields")
            proba = answers.probabilities
            out.append(Probe(
                key=str(answers.ids[i]),
                fields=None if fields is None else frozenset(fields),
                label=answers.labels[i].item() if hasattr(answers.labels[i], "item")
                else answers.labels[i],
                confidence=raw.get("confidence"),
                probabilities=None if proba is None else proba[i].tolist(),
                value=None if answers.values is None else float(answers.values[i])))
        return out


def drive(tq: TreeQuerier, searches: list[Asking[T]]) -> list[T]:
    """Run ``searches`` in lockstep: each round, the rows all of them wait for go out as
    one request (the ledger answers a row asked twice once). Returns their results."""
    results: list[Any] = [None] * len(searches)
    waiting: dict[int, list[Row]] = {}
    for j, search in enumerate(searches):
        try:
            waiting[j] = next(search)
        except StopIteration as stop:
            results[j] = stop.value
    while waiting:
        probes = tq.ask([row for rows in waiting.values() for row in rows])
        start, still = 0, {}
        for j, rows in waiting.items():
            part, start = probes[start:start + len(rows)], start + len(rows)
            try:
                still[j] = searches[j].send(part)
            except StopIteration as stop:
                results[j] = stop.value
        waiting = still
    return results


def check_leaf_count(n_leaves: int, max_leaves: int) -> None:
    """A target whose identities keep changing is not a tree: stop and say so."""
    if n_leaves > max_leaves:
        raise UnsupportedModelError(
            f"more than {max_leaves} distinct leaves found: the target does not answer "
            "like a decision tree (its identities have no tree structure)")


def _leaf_record(space: FeatureSpace, leaf: Leaf, regression: bool) -> dict[str, Any]:
    preds: dict[str, dict[str, Any]] = {}
    for i in sorted(leaf.predicates):
        pred = leaf.predicates[i]
        f = space.features[i]
        if isinstance(pred, frozenset):
            preds[f.name] = {"in": [v for v in f.values if v in pred]}  # type: ignore[union-attr]
        else:
            lo, hi = pred
            preds[f.name] = {"min": None if math.isinf(lo) else float(lo),
                             "max": None if math.isinf(hi) else float(hi)}
    p = leaf.probe
    out: dict[str, Any] = {"predicates": preds, "confidence": p.confidence,
                           "complete": leaf.complete}
    if regression:
        out["value"] = p.value if p.value is not None else float(p.label)
    else:
        out["label"] = p.label
        out["probabilities"] = p.probabilities
    return out


def build_tree(oracle: Oracle, leaves: list[Leaf]) -> Any:
    """The extracted estimator holding ``leaves``."""
    regression = oracle.classes is None
    model: Any = (ExtractedTreeRegressor if regression
                  else ExtractedTreeClassifier)(oracle.space.to_json())
    model.leaves_ = [_leaf_record(oracle.space, leaf, regression) for leaf in leaves]
    if not regression:
        model.classes_ = np.asarray(oracle.classes)
    return model

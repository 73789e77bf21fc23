"""JsonApiOracle: any JSON prediction API, through a declared request/response mapping.

Many model servers take ``{"instances": [row, ...]}`` and answer
``{"predictions": [answer, ...]}`` (TensorFlow Serving, Vertex AI, SageMaker's JSON
containers, KServe V1). A :class:`JsonMapping` says where the rows go, in which form (raw
feature values by name, raw values in feature order, or model-space vectors), where the
answers are and which fields hold the label, the probabilities and a regression value. An
answer that is a bare list is read as the probabilities, a bare number or string as the
label (or, for a regressor, the value). Answers are checked as the other HTTP oracles
check theirs: malformed ones are retried, then refused, never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import numpy as np

from stealml.ledger import Ledger
from stealml.oracles.base import BaseOracle, fingerprint_of
from stealml.oracles.http import raw_queries
from stealml.oracles.transport import JsonClient, MalformedAnswer, RetryPolicy, post_in_chunks
from stealml.policies import ApiPolicy, Output
from stealml.space import FeatureSpace

__all__ = ["JsonApiOracle", "JsonMapping"]


@dataclass(frozen=True)
class JsonMapping:
    """Where a JSON API takes its rows and gives its answers.

    Parameters
    ----------
    path : str
        The prediction route, e.g. ``/v1/models/m:predict``.
    rows : {"named", "ordered", "encoded"}
        Each row as ``{feature: value}`` (omitting missing ones), as raw values in feature
        order, or as its model-space vector.
    request_key, response_key : str
        ``{request_key: [rows]}`` goes out; ``answer[response_key]`` (a dotted path) comes
        back as one answer per row.
    label_field, probabilities_field, value_field : str, optional
        Fields of a dict answer. Probabilities may be a list (in class order) or a dict
        keyed by class.
    extra : dict
        Merged into every request body.
    """

    path: str
    rows: Literal["named", "ordered", "encoded"] = "named"
    request_key: str = "instances"
    response_key: str = "predictions"
    label_field: str | None = "label"
    probabilities_field: str | None = "probabilities"
    value_field: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class JsonApiOracle(BaseOracle):
    """A model behind a JSON API described by a :class:`JsonMapping`.

    Parameters
    ----------
    url : str
        The API's base URL.
    space : FeatureSpace
        The model's input features (such APIs rarely publish them).
    mapping : JsonMapping
    classes : sequence, optional
        Class labels in probability order; None for a regressor.
    api_key, price, ledger, batch_size, timeout, retry, transport
        As for :class:`~stealml.oracles.oip.OipOracle`.

    Examples
    --------
    >>> m = JsonMapping("/v1/models/m:predict", rows="encoded", label_field=None)
    >>> m.request_key, m.response_key
    ('instances', 'predictions')
    """

    def __init__(self, url: str, space: FeatureSpace, mapping: JsonMapping,
                 classes: Sequence[Any] | None = None, api_key: str | None = None,
                 price: float = 0.0, ledger: Ledger | None = None, batch_size: int = 100,
                 timeout: float = 10.0, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        output: Output = ("probabilities" if mapping.probabilities_field or classes is None
                          else "labels")
        super().__init__(space, ApiPolicy(output=output, price=price), ledger)
        self.raw_rows = mapping.rows != "encoded"  # named or positional raw values
        self.client = JsonClient(url, api_key, timeout, retry, transport)
        self.mapping = mapping
        self._classes = None if classes is None else np.asarray(classes)
        self.batch_size = batch_size
        self._paid: dict[str, dict[str, Any]] = {}

    @property
    def fingerprint(self) -> str:
        return fingerprint_of({"url": self.client.base_url, "mapping": asdict(self.mapping),
                              "space": self.space.to_dict()})

    @property
    def classes(self) -> np.ndarray | None:
        return self._classes

    @property
    def reveals(self) -> frozenset[str]:
        if self._classes is None:
            return frozenset({"labels", "values"})
        has_p = self.mapping.probabilities_field is not None
        return frozenset({"labels", "probabilities"} if has_p else {"labels"})

    def _rows(self, X: np.ndarray) -> list[Any]:
        if self.mapping.rows == "encoded":
            return X.tolist()
        named = raw_queries(self.space, X)
        if self.mapping.rows == "named":
            return named
        return [[row.get(n) for n in self.space.names] for row in named]

    def _fetch(self, X: np.ndarray) -> list[dict[str, Any]]:
        rows = self._rows(X)
        m = self.mapping
        return post_in_chunks(
            self.client, X, self.batch_size,
            lambda idx: (m.path, {**m.extra, m.request_key: [rows[i] for i in idx]}),
            self._parse, self._paid)

    def _parse(self, data: Any, n: int) -> list[dict[str, Any]]:
        for key in self.mapping.response_key.split("."):
            data = data.get(key) if isinstance(data, dict) else None
        if not isinstance(data, list) or len(data) != n:
            raise MalformedAnswer(f"expected {n} answers under {self.mapping.response_key!r}")
        return [self._record(a) for a in data]

    def _record(self, answer: Any) -> dict[str, Any]:
        m = self.mapping
        label = answer.get(m.label_field) if isinstance(answer, dict) and m.label_field \
            else None
        probs = answer if isinstance(answer, list) else (
            answer.get(m.probabilities_field) if isinstance(answer, dict) and
            m.probabilities_field else None)
        if self._classes is None:
            value = answer.get(m.value_field or "") if isinstance(answer, dict) else answer
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MalformedAnswer(f"no regression value in {answer!r}")
            return {"label": float(value), "value": float(value), "raw": answer}
        if not isinstance(answer, (dict, list)):
            label = answer
        rec: dict[str, Any] = {"raw": answer}
        if probs is not None or m.probabilities_field is not None:
            p = self._aligned(probs)
            rec["probabilities"] = p.tolist()
            if label is None:
                label = self._classes[int(np.argmax(p))]
        by_text = {str(c): c for c in self._classes.tolist()}
        if label is None or str(label) not in by_text:
            raise MalformedAnswer(f"answer {answer!r} has no label among the classes")
        rec["label"] = by_text[str(label)]
        return rec

    def _aligned(self, probs: Any) -> np.ndarray:
        classes = [str(c) for c in (self._classes if self._classes is not None else [])]
        if isinstance(probs, dict):
            probs = [probs.get(c) for c in classes]
        try:
            p = np.asarray(probs, dtype=float)
        except (TypeError, ValueError):
            raise MalformedAnswer(f"probabilities {probs!r} are not numbers") from None
        if p.shape != (len(classes),) or not np.isfinite(p).all() or (p < 0).any() or \
                abs(p.sum() - 1.0) > 1e-6:
            raise MalformedAnswer(f"probabilities {probs!r} are not {len(classes)} numbers "
                                  "that sum to 1")
        return p

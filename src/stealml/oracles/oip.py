"""OipOracle: any model server speaking the Open Inference Protocol (KServe V2) over REST.

MLServer, KServe, Triton and ``stealml serve`` answer ``POST /v2/models/{name}/infer``
with named output tensors. A V2 server takes the model's input tensor directly (a
"direct query" interface), so model-space rows are sent as they are, one FP64 tensor of
shape ``[n, d]``. scikit-learn runtimes name their outputs ``predict`` and
``predict_proba``; other servers' names are parameters.

V2 metadata gives the input's shape but not the features' meaning or the classes: pass
``space`` and ``classes`` when the server does not publish them (``stealml serve`` does,
under ``parameters``). Without them the space is ``d`` continuous features in [-1, 1] and
the classes are ``0 .. c-1`` (scikit-learn's order for integer labels), checked against
every answer's labels.

References: KServe Open Inference Protocol (REST); Tramèr et al. 2016, section 2.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from stealml.exceptions import OracleError
from stealml.ledger import Ledger
from stealml.oracles.base import BaseOracle, fingerprint_of
from stealml.oracles.transport import JsonClient, MalformedAnswer, RetryPolicy, post_in_chunks
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

__all__ = ["OipOracle"]


class OipOracle(BaseOracle):
    """A model behind an Open Inference Protocol (V2) REST endpoint.

    Parameters
    ----------
    url : str
        The server's base URL (``/v2/...`` is appended).
    model : str
        The model's name on the server.
    space : FeatureSpace, optional
        The model's input features (default: published by the server, else the input
        tensor's width as continuous features in [-1, 1]).
    classes : sequence, optional
        The class labels in the order of the probability columns.
    api_key : str, optional
    price : float
        Dollars per prediction, for the ledger (V2 servers do not publish one).
    ledger : Ledger, optional
    input_name, label_output, proba_output : str
        Tensor names; ``proba_output=None`` when the server returns labels only (also
        taken when the metadata lists its outputs without ``proba_output``). A model the
        server publishes as ``task: regression`` answers values (``label_output``).
    batch_size : int
        Most rows per request.
    timeout, retry, transport
        As for :class:`~stealml.oracles.http.HttpOracle`.

    Examples
    --------
    >>> OipOracle("http://127.0.0.1:1", "m", retry=RetryPolicy(tries=1), timeout=0.5)
    Traceback (most recent call last):
    ...
    stealml.exceptions.OracleUnavailableError: http://127.0.0.1:1/v2/models/m did not ...
    """

    def __init__(self, url: str, model: str, space: FeatureSpace | None = None,
                 classes: Sequence[Any] | None = None, api_key: str | None = None,
                 price: float = 0.0, ledger: Ledger | None = None,
                 input_name: str = "input-0", label_output: str = "predict",
                 proba_output: str | None = "predict_proba", batch_size: int = 1000,
                 timeout: float = 10.0, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.client = JsonClient(url, api_key, timeout, retry, transport)
        self.model_name = model
        self.meta: dict[str, Any] = self.client.get(f"/v2/models/{model}", _metadata)
        published = self.meta.get("parameters") or {}
        if space is None:
            space = _space(self.meta, published)
        # a regressor (stealml serve publishes its task) answers values, not classes
        self._regressor = published.get("task") == "regression"
        if self._regressor:
            classes, proba_output = None, None
        if classes is None and published.get("classes"):
            classes = published["classes"]
        listed = {str(t.get("name")) for t in self.meta.get("outputs") or []
                  if isinstance(t, dict)}
        if proba_output and listed and proba_output not in listed:
            proba_output = None  # the metadata lists the outputs, and no probabilities
        policy = ApiPolicy(output="probabilities" if proba_output else "labels", price=price)
        super().__init__(space, policy, ledger)
        self._classes = None if classes is None else np.asarray(classes)
        self.input_name = input_name
        self.label_output = label_output
        self.proba_output = proba_output
        self.batch_size = batch_size
        self._paid: dict[str, dict[str, Any]] = {}

    @property
    def fingerprint(self) -> str:
        return fingerprint_of({"url": self.client.base_url, "model": self.model_name,
                              "meta": self.meta, "space": self.space.to_dict(),
                              "policy": self.policy.describe()})

    @property
    def classes(self) -> np.ndarray | None:
        return self._classes

    @property
    def reveals(self) -> frozenset[str]:
        if self._regressor:
            return frozenset({"labels", "values"})
        return frozenset({"labels", "probabilities"} if self.proba_output else {"labels"})

    def close(self) -> None:
        self.client.close()

    def _fetch(self, X: np.ndarray) -> list[dict[str, Any]]:
        wanted = [self.label_output] + ([self.proba_output] if self.proba_output else [])
        path = f"/v2/models/{self.model_name}/infer"

        def request(rows: list[int]) -> tuple[str, Any]:
            chunk = X[rows]
            return path, {"inputs": [{"name": self.input_name, "shape": list(chunk.shape),
                                      "datatype": "FP64", "data": chunk.ravel().tolist()}],
                          "outputs": [{"name": n} for n in wanted]}

        return post_in_chunks(self.client, X, self.batch_size, request, self._parse,
                              self._paid)

    def _parse(self, data: Any, n: int) -> list[dict[str, Any]]:
        tensors: dict[str, Any] = {}
        if isinstance(data, dict) and isinstance(data.get("outputs"), list):
            tensors = {str(t.get("name")): t for t in data["outputs"] if isinstance(t, dict)}
        labels = _tensor(tensors, self.label_output, n)
        if labels.ndim == 2 and labels.shape[1] == 1:  # MLServer answers [n, 1]
            labels = labels[:, 0]
        proba = None
        if self.proba_output:
            proba = _tensor(tensors, self.proba_output, n).astype(np.float64)
            if proba.ndim != 2 or not np.isfinite(proba).all() or \
                    np.abs(proba.sum(axis=1) - 1.0).max() > 1e-6 or (proba < 0).any():
                raise MalformedAnswer("the probabilities are not rows that sum to 1")
            if self._classes is None:
                self._classes = np.arange(proba.shape[1])
            if proba.shape[1] != len(self._classes):
                raise MalformedAnswer(f"{proba.shape[1]} probability columns for "
                                      f"{len(self._classes)} classes")
        if self._regressor:
            values = labels.astype(np.float64) if labels.dtype.kind in "iuf" else None
            if values is None or values.ndim != 1 or not np.isfinite(values).all():
                raise MalformedAnswer("a regression answer without a finite value")
            return [{"label": float(v), "value": float(v), "raw": {"label": float(v)}}
                    for v in values]
        records = []
        known = None if self._classes is None else {str(c): c for c in self._classes.tolist()}
        for i, raw_label in enumerate(labels.tolist()):
            label = raw_label if known is None else known.get(_text(raw_label))
            if label is None:
                raise OracleError(f"label {raw_label!r} is not one of the classes "
                                  f"{list(known or [])}; pass the server's classes")
            rec: dict[str, Any] = {"label": label, "raw": {"label": raw_label}}
            if proba is not None:
                rec["probabilities"] = proba[i].tolist()
                rec["raw"]["probabilities"] = proba[i].tolist()
            records.append(rec)
        return records


def _text(label: Any) -> str:
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def _tensor(tensors: dict[str, Any], name: str, n: int) -> np.ndarray:
    t = tensors.get(name)
    if t is None or not isinstance(t.get("data"), list):
        raise MalformedAnswer(f"the answer has no output tensor {name!r}")
    try:
        arr = np.asarray(t["data"])
        shape = [int(s) for s in t.get("shape") or [len(arr)]]
        arr = arr.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise MalformedAnswer(f"output {name!r} does not match its shape: {exc}") from exc
    if len(arr) != n:
        raise MalformedAnswer(f"output {name!r} has {len(arr)} rows for {n} queries")
    return arr


def _metadata(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or "name" not in data:
        raise MalformedAnswer("the model metadata is not a V2 metadata object")
    return data


def _space(meta: dict[str, Any], published: dict[str, Any]) -> FeatureSpace:
    if published.get("features"):
        return FeatureSpace.from_dict({"features": published["features"]})
    for t in meta.get("inputs") or []:
        shape = t.get("shape") if isinstance(t, dict) else None
        if isinstance(shape, list) and len(shape) == 2 and int(shape[1]) > 0:
            return FeatureSpace.continuous(int(shape[1]))
    raise OracleError(f"model {meta.get('name')!r} does not publish its input width; "
                      "give its FeatureSpace (--space)")

"""HttpOracle: a model behind stealml's prediction service (``stealml serve``), over HTTP.

The oracle reads the model's published metadata (input features, classes, what answers
reveal, incomplete-input semantics, price), so an attacker needs nothing but the URL.
Attacks send model-space rows; the oracle decodes each into raw feature values (as the
service takes them) and asks in batches. Continuous values are sent exactly as asked,
not snapped to the published granularity: a service takes any number. A row that is not
a valid encoding (one-hot columns that are not 0/1 with a single 1, numerics outside
[-1, 1]) raises :class:`~stealml.exceptions.InvalidInputError`: no raw input encodes to
it, and silently asking a different point would corrupt the attack's equations. Attacks
that pick arbitrary points of the encoded box must therefore keep categorical blocks
one-hot.

References: Tramèr et al., USENIX Security 2016, sections 2.2 and 5.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import httpx
import numpy as np

from stealml.exceptions import InvalidInputError, OracleError
from stealml.ledger import Ledger
from stealml.models.tree_service import identity_key
from stealml.oracles.base import BaseOracle, fingerprint_of
from stealml.oracles.transport import JsonClient, MalformedAnswer, RetryPolicy, post_in_chunks
from stealml.policies import ApiPolicy
from stealml.space import ContinuousFeature, FeatureSpace

__all__ = ["HttpOracle", "raw_queries"]


def raw_queries(space: FeatureSpace, X: np.ndarray) -> list[dict[str, Any]]:
    """Model-space rows -> raw inputs (feature name -> value; missing features omitted).

    Raises :class:`InvalidInputError` for a row that no raw input encodes to.
    """
    exact = FeatureSpace([replace(f, granularity=None) if isinstance(f, ContinuousFeature)
                          else f for f in space.features])
    raw = exact.decode(X)
    again = exact.encode(raw)
    same = np.isclose(again, X, rtol=0.0, atol=1e-9) | (np.isnan(again) & np.isnan(X))
    if not same.all():
        i, j = (int(v[0]) for v in np.nonzero(~same))
        raise InvalidInputError(
            f"query row {i} is not a valid encoding of the API's features (column "
            f"{space.encoded_names[j]!r} = {float(X[i, j])!r}): a prediction API takes raw feature "
            "values, so one-hot columns must be 0 or 1 with a single 1 and numeric columns "
            "within [-1, 1]")
    names = space.names
    return [{n: v for n, v in zip(names, row, strict=True) if v is not None} for row in raw]


class HttpOracle(BaseOracle):
    """A model served by ``stealml serve``, reached over HTTP.

    Parameters
    ----------
    url : str
        The service's base URL, e.g. ``http://127.0.0.1:8000``.
    model : str, optional
        The model's name (may be left out when the service has only one).
    api_key : str, optional
        The key the service issued (sent as a Bearer token).
    ledger : Ledger, optional
        The accountant; its price is the service's published price per prediction.
    batch_size : int, optional
        Most rows per request (default: the service's ``max_batch``).
    timeout : float
        Seconds to wait for a connection or an answer.
    retry : RetryPolicy, optional
        Retries with backoff on 429, 5xx, timeouts and malformed answers.
    transport : httpx.BaseTransport, optional
        Replaces the network (tests).

    Raises
    ------
    OracleUnavailableError
        The service cannot be reached.
    OracleError
        The service has no such model, or its metadata is malformed.

    Examples
    --------
    >>> from stealml.server import ServiceSettings, running
    >>> with running(ServiceSettings(models=[])) as url:
    ...     HttpOracle(url, "nope")
    Traceback (most recent call last):
    ...
    stealml.exceptions.OracleError: ... has no model 'nope'; it has: none
    """

    raw_rows = True  # the service takes named raw feature values

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None,
                 ledger: Ledger | None = None, batch_size: int | None = None,
                 timeout: float = 10.0, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.client = JsonClient(url, api_key, timeout, retry, transport)
        try:
            listing = self.client.get("/models", _listing)
        except OracleError as exc:
            named = re.search(r"^(.*?)/(?:v2/)?models/([^/]+)/?$", url)
            if named is None or "HTTP 404" not in str(exc):
                raise
            raise OracleError(f"{url} is a model's address: give the service's base URL "
                              f"({named.group(1) or '/'}) and the model's name "
                              f"({named.group(2)}) apart (--url and --model)") from exc
        names = [m.get("name") for m in listing["models"]]
        if model is None and len(names) == 1:
            model = names[0]
        if model not in names:
            raise OracleError(f"the service at {url} has no model {model!r}; it has: "
                              f"{', '.join(map(str, names)) or 'none'}")
        self.meta: dict[str, Any] = next(m for m in listing["models"] if m["name"] == model)
        self.model_name = str(model)
        try:
            space = FeatureSpace.from_dict({"features": self.meta["features"]})
            policy = ApiPolicy(
                output=self.meta["output"] if self.meta["output"] != "value"
                else "probabilities", top_k=self.meta.get("top_k"),
                rounding=self.meta.get("rounding"),
                significant_digits=self.meta.get("significant_digits"),
                incomplete=self.meta["incomplete"], price=float(self.meta["price"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise OracleError(f"malformed metadata for model {model!r} at {url}: "
                              f"{exc}") from exc
        super().__init__(space, policy, ledger)
        most = int(listing.get("max_batch") or 100)
        self.batch_size = min(batch_size, most) if batch_size else most
        self._regressor = self.meta.get("task") == "regression"
        self._classes = None if self._regressor else np.asarray(self.meta["classes"])
        self._paid: dict[str, dict[str, Any]] = {}

    @property
    def fingerprint(self) -> str:
        return fingerprint_of({"url": self.client.base_url, "model": self.meta})

    @property
    def classes(self) -> np.ndarray | None:
        return self._classes

    @property
    def reveals(self) -> frozenset[str]:
        out = {"labels"}
        if self._regressor:
            out.add("values")
        elif self.meta["output"] in ("probabilities", "top-k"):
            out.add("probabilities")
        if self.policy.incomplete != "reject":
            out.add("incomplete")
        if self.meta.get("confidence"):
            out.add("ids")  # (label, confidence): a tree leaf's pseudo-identity
        return frozenset(out)

    def close(self) -> None:
        self.client.close()

    def _fetch(self, X: np.ndarray) -> list[dict[str, Any]]:
        inputs = raw_queries(self.space, X)
        path = f"/models/{self.model_name}/batch"
        return post_in_chunks(self.client, X, self.batch_size,
                              lambda rows: (path, {"inputs": [inputs[i] for i in rows]}),
                              self._parse, self._paid)

    def _parse(self, data: Any, n: int) -> list[dict[str, Any]]:
        preds = data.get("predictions") if isinstance(data, dict) else None
        if not isinstance(preds, list) or len(preds) != n:
            raise MalformedAnswer(f"expected {n} predictions, got "
                                  f"{len(preds) if isinstance(preds, list) else preds!r}")
        return [self._record(p) for p in preds]

    def _record(self, pred: Any) -> dict[str, Any]:
        if not isinstance(pred, dict) or "label" not in pred:
            raise MalformedAnswer(f"a prediction without a label: {pred!r}")
        if self._regressor:
            value = pred.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise MalformedAnswer(f"a regression answer without a finite value: {pred!r}")
            return _identified({"label": float(value), "value": float(value), "raw": pred})
        classes = self._classes if self._classes is not None else np.empty(0)
        by_text = {str(c): c for c in classes.tolist()}
        label = by_text.get(str(pred["label"]))
        if label is None:
            raise MalformedAnswer(f"label {pred['label']!r} is not one of the classes")
        rec: dict[str, Any] = {"label": label, "raw": pred}
        if "probabilities" in self.reveals:
            rec["probabilities"] = _probabilities(pred.get("probabilities"), list(by_text),
                                                  self.policy)
        return _identified(rec)


def _identified(rec: dict[str, Any]) -> dict[str, Any]:
    """Adds a tree answer's identity: its label and confidence (paper, section 4.2)."""
    confidence = rec["raw"].get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise MalformedAnswer(f"confidence {confidence!r} is not a number")
        rec["id"] = identity_key(rec["label"], float(confidence))
    return rec


def _listing(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) or not all(
            isinstance(m, dict) and "name" in m for m in data["models"]):
        raise MalformedAnswer("the model list is not {'models': [{'name': ...}, ...]}")
    return data


def _probabilities(probs: Any, classes: list[str], policy: ApiPolicy) -> list[float | None]:
    """Probabilities aligned with ``classes``; checks they are what the policy promises."""
    if not isinstance(probs, dict) or not set(probs) <= set(classes):
        raise MalformedAnswer(f"probabilities {probs!r} are not keyed by the classes")
    row: list[float | None] = []
    for c in classes:
        p = probs.get(c)
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                              or not 0.0 <= p <= 1.0):
            raise MalformedAnswer(f"probability {p!r} of class {c!r} is not in [0, 1]")
        row.append(None if p is None else float(p))
    shown = [p for p in row if p is not None]
    if policy.output == "top-k":
        if len(shown) != min(int(policy.top_k or 1), len(classes)):
            raise MalformedAnswer(f"top-{policy.top_k} answer shows {len(shown)} classes")
    else:
        slack = 1e-6 + (len(classes) * 0.5 * 10.0 ** -policy.rounding
                        if policy.rounding is not None else 0.0)
        if len(shown) != len(classes) or abs(sum(shown) - 1.0) > slack:
            raise MalformedAnswer(f"probabilities {probs!r} do not sum to 1")
    return row

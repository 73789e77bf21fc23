"""JSON over HTTP for the HTTP oracles: retries, backoff, Retry-After, clear errors.

One :class:`JsonClient` holds an ``httpx.Client`` (connection reuse; an injectable
transport for tests). A POST carries an ``Idempotency-Key`` that stays the same across
its retries, so a service that honours it (stealml's does) never charges a retried
request twice. Retried: connection errors, timeouts, 429 (honouring ``Retry-After``,
except a spent quota, which no wait cures), 5xx, and an answer that is not the JSON the
oracle expects (truncated, garbled, inconsistent). When the tries run out the error is
raised: a malformed answer is never used as data.
"""

from __future__ import annotations

import email.utils
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import numpy as np

from stealml.exceptions import OracleError, OracleUnavailableError
from stealml.ledger import query_key

__all__ = ["JsonClient", "MalformedAnswer", "RetryPolicy", "post_in_chunks"]

T = TypeVar("T")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class MalformedAnswer(Exception):
    """Raised by a validator: the answer is not what the protocol promises (retried)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Parameters
    ----------
    tries : int
        Attempts per request in all (1 = no retry).
    backoff : float
        Seconds before the first retry, doubled after each.
    max_wait : float
        Longest wait between tries, a ``Retry-After`` included.
    """

    tries: int = 6
    backoff: float = 0.05
    max_wait: float = 10.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        own = self.backoff * 2 ** attempt
        return min(self.max_wait, max(own, retry_after or 0.0))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
    err = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
    if isinstance(err, dict):
        err = err.get("message", err)
    return str(err)[:500]


def _code(response: httpx.Response) -> str | None:
    try:
        err = response.json().get("error")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return err.get("code") if isinstance(err, dict) else None


class JsonClient:
    """GET and POST JSON against one base URL.

    Parameters
    ----------
    base_url : str
        E.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``Authorization: Bearer KEY``.
    timeout : float
        Seconds for connecting and for reading an answer.
    retry : RetryPolicy, optional
    transport : httpx.BaseTransport, optional
        Replaces the network (e.g. ``httpx.MockTransport`` or an ASGI app's transport).
    sleep : callable
        How to wait between tries.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0,
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        self.retries = 0
        self._sleep = sleep
        self._client = httpx.Client(base_url=self.base_url, headers=headers,
                                    timeout=httpx.Timeout(timeout), transport=transport)

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, validate: Callable[[Any], T]) -> T:
        return self._send("GET", path, None, validate)

    def post(self, path: str, body: Any, validate: Callable[[Any], T]) -> T:
        return self._send("POST", path, body, validate)

    def _send(self, method: str, path: str, body: Any, validate: Callable[[Any], T]) -> T:
        headers = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
        url = f"{self.base_url}{path}"
        problem = ""
        for attempt in range(self.retry.tries):
            if attempt:
                self.retries += 1
            retry_after = None
            try:
                response = self._client.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused, reset, truncated
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in RETRY_STATUS:
                    if response.status_code == 429 and _code(response) == "quota_exceeded":
                        raise OracleError(f"{url}: quota spent: {_message(response)}")
                    problem = f"HTTP {response.status_code}: {_message(response)}"
                    retry_after = _retry_after(response)
                elif response.status_code >= 400:
                    raise OracleError(f"{url} refused the request (HTTP "
                                      f"{response.status_code}): {_message(response)}")
                else:
                    try:
                        return validate(response.json())
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        problem = f"the answer is not JSON: {exc}"
                    except MalformedAnswer as exc:
                        problem = f"malformed answer: {exc}"
            if attempt + 1 < self.retry.tries:
                self._sleep(self.retry.wait(attempt, retry_after))
        if problem.startswith("malformed") or problem.startswith("the answer"):
            raise OracleError(f"{url}: {problem} (after {self.retry.tries} tries; "
                              "not used as data)")
        raise OracleUnavailableError(f"{url} did not answer after {self.retry.tries} tries: "
                                     f"{problem}")


Request = Callable[[list[int]], tuple[str, Any]]
Parse = Callable[[Any, int], list[dict[str, Any]]]


def post_in_chunks(client: JsonClient, X: np.ndarray, size: int, request: Request,
                   parse: Parse, paid: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer the rows of ``X`` with one POST per ``size`` rows.

    ``request(rows)`` gives the path and body for those row indices; ``parse(data, n)``
    checks an answer of n rows. Answers are kept in ``paid`` (by query key) until the whole
    batch is answered: when a later chunk fails, asking the batch again pays only for the
    rows not yet answered, so the service bills each row once, as the ledger counts it.
    """
    keys = [query_key(row) for row in X]
    todo = [i for i, k in enumerate(keys) if k not in paid]
    for start in range(0, len(todo), max(size, 1)):
        rows = todo[start:start + size]
        path, body = request(rows)
        answers = client.post(path, body, _expecting(parse, len(rows)))
        for i, answer in zip(rows, answers, strict=True):
            paid[keys[i]] = answer
    return [paid.pop(k) for k in keys]


def _expecting(parse: Parse, n: int) -> Callable[[Any], list[dict[str, Any]]]:
    return lambda data: parse(data, n)

"""A flaky service: 429s, 503s, timeouts, truncated, garbled and inconsistent answers.

The faults come from an ASGI middleware in front of the real app, on a real loopback
server. Faults after the app has answered (timeouts, broken bodies) hit requests the
service has already logged and charged: the retry carries the same Idempotency-Key, so the
service answers it from its log without charging again.
"""

from __future__ import annotations

import asyncio
import json
from itertools import cycle
from typing import Any

import numpy as np
import pytest

from stealml.attacks import EquationSolving
from stealml.exceptions import OracleError
from stealml.oracles import HttpOracle, RetryPolicy
from stealml.oracles.transport import JsonClient
from stealml.server import create_app, running
from stealml.server.store import PredictionLog

TIMEOUT = 0.5
FAULTS = ["429", "503", "garbled", "slow", "truncated", "inconsistent", "ok"]


class Faults:
    """ASGI middleware: each POST gets the next fault of ``plan`` (cycled)."""

    def __init__(self, app: Any, plan: list[str], retry_after: str = "0") -> None:
        self.app = app
        self.plan = cycle(plan)
        self.retry_after = retry_after
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        fault = next(self.plan)
        self.seen.append(fault)
        if fault in ("429", "503"):
            headers = [(b"content-type", b"application/json"),
                       (b"retry-after", self.retry_after.encode())]
            await send({"type": "http.response.start", "status": int(fault),
                        "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error": "busy"}'})
            return
        status, headers, body = await self._answer(scope, receive)
        if fault == "slow":
            await asyncio.sleep(3 * TIMEOUT)
        elif fault == "garbled":
            body = b"\x00\xff" + body[7:]
        elif fault == "inconsistent":
            data = json.loads(body)
            data["predictions"] = data["predictions"][1:]
            body = json.dumps(data).encode()
        length = len(body)
        if fault == "truncated":
            body = body[: length // 2]
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: dict[str, Any],
                      receive: Any) -> tuple[int, list[Any], bytes]:
        out: dict[str, Any] = {"body": b""}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"], out["headers"] = message["status"], message["headers"]
            else:
                out["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        return out["status"], list(out["headers"]), out["body"]


def _attack(url: str, key: str) -> tuple[Any, HttpOracle]:
    oracle = HttpOracle(url, "lr", api_key=key, timeout=TIMEOUT,
                        retry=RetryPolicy(tries=len(FAULTS) + 1, backoff=0.001))
    return EquationSolving(random_state=0).run(oracle), oracle


@pytest.mark.slow
def test_the_attack_survives_a_flaky_service(make_settings, api_key) -> None:
    settings = make_settings()
    with running(settings) as url:
        healthy, _ = _attack(url, api_key)
    settings.log.unlink()  # type: ignore[union-attr]
    faults = Faults(create_app(settings), FAULTS)
    with running(faults) as url:
        flaky, oracle = _attack(url, api_key)
    assert set(faults.seen) == set(FAULTS)
    assert oracle.client.retries >= 6
    assert np.array_equal(flaky.model.coef_, healthy.model.coef_)
    assert np.array_equal(flaky.model.intercept_, healthy.model.intercept_)
    assert flaky.queries == healthy.queries and flaky.cost == healthy.cost
    assert PredictionLog(settings.log).usage("attacker") == flaky.queries


def test_a_malformed_answer_is_never_used_as_data(make_settings, api_key) -> None:
    with running(Faults(create_app(make_settings()), ["garbled"])) as url:
        oracle = HttpOracle(url, "lr", api_key=api_key,
                            retry=RetryPolicy(tries=3, backoff=0.0))
        with pytest.raises(OracleError, match="not used as data"):
            oracle.query(np.zeros((2, 4)))
        assert oracle.ledger.queries == 0 and oracle.ledger.cost == 0


def test_retry_after_is_honoured(make_settings, api_key) -> None:
    waits: list[float] = []
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0] * 4}]}
    with running(Faults(create_app(make_settings()), ["429", "503", "ok"],
                        retry_after="7")) as url:
        client = JsonClient(url, api_key, retry=RetryPolicy(backoff=0.01), sleep=waits.append)
        answer = client.post("/v2/models/lr/infer", body, lambda d: d)
    assert answer["outputs"][0]["name"] == "predict"
    assert waits == [7.0, 7.0]


def test_a_batch_asked_again_after_a_failed_chunk_pays_each_row_once(make_settings,
                                                                     api_key) -> None:
    settings = make_settings()  # max_batch 4: 10 rows go in 3 requests
    plan = ["ok", "503", "503", "ok", "ok"]
    X = np.linspace(-1, 1, 40).reshape(10, 4)
    with running(Faults(create_app(settings), plan)) as url:
        oracle = HttpOracle(url, "lr", api_key=api_key,
                            retry=RetryPolicy(tries=2, backoff=0.0))
        with pytest.raises(OracleError, match="HTTP 503"):
            oracle.query(X)
        assert oracle.ledger.queries == 0
        answers = oracle.query(X)
    assert len(answers) == 10 and oracle.ledger.queries == 10
    assert PredictionLog(settings.log).usage("attacker") == 10

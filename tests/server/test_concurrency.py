"""32 concurrent clients, thousands of requests, a real server: the log and quotas are exact."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stealml.server import ServiceSettings, load_settings, running
from stealml.server.store import PredictionLog

CLIENTS, BATCHES, SINGLES, QUOTA = 32, 60, 20, 500


def _row(uid: int) -> dict[str, object]:
    """A valid input whose ``hours`` identifies it."""
    return {"age": 40, "hours": uid / 1000, "sex": "F", "work": "self"}


def _client(url: str, c: int, keys: dict[str, str]) -> tuple[list[float], int]:
    """One client: batches under bob's key (no quota), singles under alice's (a quota).
    Returns the ids answered to bob and the count of alice's answered singles."""
    answered: list[float] = []
    singles = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(BATCHES):
            rows = [_row((c * BATCHES + i) * 4 + k) for k in range(1 + i % 4)]
            r = http.post("/models/softmax/batch", json={"inputs": rows},
                          headers={"X-API-Key": keys["bob"]})
            r.raise_for_status()
            assert len(r.json()["predictions"]) == len(rows)
            answered += [float(row["hours"]) for row in rows]  # type: ignore[arg-type]
        for i in range(SINGLES):
            r = http.post("/models/softmax/predict", json={"input": _row(10**6 + c * 100 + i)},
                          headers={"X-API-Key": keys["alice"]})
            assert r.status_code in (200, 429), r.text
            singles += r.status_code == 200
    return answered, singles


@pytest.mark.slow
def test_every_answer_is_logged_once_and_quotas_are_exact(settings: ServiceSettings,
                                                         keys: dict[str, str]) -> None:
    settings = load_settings(None, **{**settings.model_dump(), "keys": [
        {"name": "alice", "key": keys["alice"], "quota": QUOTA},
        {"name": "bob", "key": keys["bob"]}]})
    with running(settings) as url, ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda c: _client(url, c, keys), range(CLIENTS)))
    answered = [h for ids, _ in results for h in ids]
    assert len(answered) > 3000 and len(set(answered)) == len(answered)
    log = PredictionLog(settings.log)
    logged = Counter(p["input"]["hours"] for p in log.predictions("bob"))
    assert max(logged.values()) == 1  # none twice
    assert sorted(logged) == sorted(answered)  # every answered prediction, nothing else
    assert sum(n for _, n in results) == QUOTA == log.usage("alice")
    assert CLIENTS * SINGLES > QUOTA

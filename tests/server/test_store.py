"""The prediction log under concurrent commits: group commit keeps quotas, idempotency
keys and the log exact."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stealml.server.errors import ApiError
from stealml.server.store import PredictionLog


def _together(n: int, work) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``work(i)`` in ``n`` threads released at once; their results or errors."""
    out: list[object] = [None] * n
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = work(i)
        except ApiError as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("path", ["log.sqlite", None])
def test_concurrent_commits_keep_the_quota_and_the_log_exact(tmp_path: Path, path) -> None:
    log = PredictionLog(None if path is None else tmp_path / path, "full")
    results = _together(24, lambda i: log.commit(
        "alice", 50, "m", f"r{i}", f"d{i}", [{"x": i, "k": k} for k in range(5)],
        [{"label": 0}] * 5, 0.01, {"i": i}))
    answered = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(answered) == 10 and len(refused) == 14  # 10 batches of 5 fill 50
    assert all(e.status == 429 for e in refused)
    logged = log.predictions("alice")
    assert log.usage("alice") == len(logged) == 50
    assert sorted({p["input"]["x"] for p in logged}) == sorted(r["i"] for r in answered)
    if path is not None:  # durable: a fresh reader sees every prediction
        assert PredictionLog(tmp_path / path).usage("alice") == 50


def test_concurrent_retries_of_one_request_are_charged_once(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.sqlite")
    results = _together(12, lambda i: log.commit(
        "bob", None, "m", "same-id", "digest", [{"x": 1}, {"x": 2}],
        [{"label": 0}, {"label": 1}], 0.0, {"answer": 42}))
    assert results == [{"answer": 42}] * 12
    assert log.usage("bob") == len(log.predictions("bob")) == 2
    with pytest.raises(ApiError, match="another request"):
        log.commit("bob", None, "m", "same-id", "other", [{"x": 3}], [{"label": 0}], 0.0, {})
    assert log.replay("bob", "same-id", "digest") == {"answer": 42}


def test_a_failed_write_charges_nothing_and_raises(tmp_path: Path, monkeypatch) -> None:
    log = PredictionLog(tmp_path / "log.sqlite")

    def broken(group: list[object]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(log, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        log.commit("carol", 5, "m", "r1", "d", [{"x": 1}] * 3, [{"label": 0}] * 3, 0.0, {})
    assert log.usage("carol") == 0
    monkeypatch.undo()
    assert log.commit("carol", 5, "m", "r1", "d", [{"x": 1}] * 3, [{"label": 0}] * 3, 0.0,
                      {"ok": True}) == {"ok": True}
    assert log.usage("carol") == len(log.predictions("carol")) == 3

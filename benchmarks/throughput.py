"""Prediction throughput over loopback: stealml's service beside MLServer.

One binary logistic regression (Breast Cancer, 9 features) is served by ``stealml serve``
(its own protocol, raw feature values in; and its Open Inference Protocol route) and by
Seldon's MLServer (V2, scikit-learn runtime, ``parallel_workers`` 0), each in a process of
its own. Client threads with keep-alive connections send single-row and batched requests;
we report predictions per second and the p50 / p99 latency of a request.

stealml's service commits every answered prediction to its SQLite log before it answers
(``synchronous=FULL``; concurrent requests share a commit and its fsync) and checks a
key; MLServer logs nothing. A second stealml process with ``log_sync=normal`` (no fsync)
shows what durability costs.

Run: .venv/bin/python benchmarks/throughput.py [--requests 600] [--clients 4]
Writes benchmarks/results/throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression

from stealml.datasets import load
from stealml.experiments.tables import write_results
from stealml.modelio import save_model
from stealml.server.mlserver import free_port, serve_sklearn
from stealml.server.runner import serving_process

RESULTS = Path(__file__).resolve().parent / "results" / "throughput"
VENV = Path(__file__).resolve().parents[1] / ".venv-mlserver"
KEY = "sk-benchmark-key"
BATCH = 100


def _measure(url: str, make_body: Callable[[int], tuple[str, dict[str, Any]]],
             requests: int, clients: int, rows: int) -> dict[str, float]:
    """``requests`` POSTs split over ``clients`` threads (after a warm-up)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def work(c: int) -> None:
        mine = []
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as http:
            for i in range(-5, requests // clients):
                path, body = make_body(c * requests + i)
                start = time.perf_counter()
                http.post(path, json=body).raise_for_status()
                if i >= 0:
                    mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"predictions/s": len(ms) * rows / wall, "p50 (ms)": float(np.percentile(ms, 50)),
            "p99 (ms)": float(np.percentile(ms, 99)), "requests": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    data = load("breast-cancer", random_state=0)
    model = LogisticRegression(max_iter=5000).fit(data.X_train, data.y_train)
    X = data.space.sample_encoded(args.requests * BATCH + 10_000, 0)
    raw = [dict(zip(data.space.names, r, strict=True)) for r in data.space.decode(X)]

    def own(i: int, n: int) -> tuple[str, dict[str, Any]]:
        rows = [raw[(i * n + k) % len(raw)] for k in range(n)]
        return ("/models/cancer/predict", {"input": rows[0]}) if n == 1 else \
            ("/models/cancer/batch", {"inputs": rows})

    def v2(name: str) -> Callable[[int, int], tuple[str, dict[str, Any]]]:
        def body(i: int, n: int) -> tuple[str, dict[str, Any]]:
            rows = X[[(i * n + k) % len(X) for k in range(n)]]
            return f"/v2/models/{name}/infer", {"inputs": [{
                "name": "predict", "shape": [n, X.shape[1]], "datatype": "FP64",
                "data": rows.ravel().tolist()}], "outputs": [{"name": "predict_proba"}]}
        return body

    out: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_model(root / "cancer.skops", model, data.space)
        serve_args = [str(root / "cancer.skops"), "--api-key", f"bench:{KEY}",
                      "--log", str(root / "log.sqlite")]
        with serving_process(serve_args, free_port()) as url:
            for label, make in (("stealml (own protocol)", own), ("stealml (V2)", v2("cancer"))):
                out += _runs(label, url, make, args)
        # the same without an fsync a commit (WAL, synchronous=NORMAL: survives a crash
        # of the service, not of the machine)
        with serving_process([*serve_args[:-1], str(root / "log-normal.sqlite")],
                             free_port(), env={"STEALML_SERVE_LOG_SYNC": "normal"}) as url:
            out += _runs("stealml (own protocol, log_sync=normal)", url, own, args)
        with serve_sklearn(model, "cancer", root / "mlserver", VENV) as url:
            out += _runs("MLServer 1.7 (V2)", url, v2("cancer"), args)
    columns = ["server", "request", "rows/request", "clients", "requests", "predictions/s",
               "p50 (ms)", "p99 (ms)"]
    notes = (f"{args.clients} client threads with keep-alive connections, on the same "
             "2-core machine as the server (loopback). stealml logs every prediction "
             "durably (SQLite, synchronous=FULL, the default; concurrent requests' "
             "predictions are committed together, one fsync for the group) and checks an "
             "API key; MLServer does neither. The log_sync=normal row commits "
             "without the fsync (survives a crash of the service, not of the machine). "
             "Latency is per request; predictions/s counts rows. Load average "
             f"(1 min) before / after the run: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
             "(other work on the machine slows every row alike).")
    write_results(RESULTS, "Prediction throughput over loopback: stealml and MLServer",
                  out, columns, notes)


def _runs(label: str, url: str, make: Callable[[int, int], tuple[str, dict[str, Any]]],
          args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n, requests in ((1, args.requests), (BATCH, max(args.requests // 5, args.clients))):
        stats = _measure(url, lambda i, n=n: make(i, n), requests, args.clients, n)
        rows.append({"server": label, "request": "single" if n == 1 else "batch",
                     "rows/request": n, "clients": args.clients, **stats})
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()

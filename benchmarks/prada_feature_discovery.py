"""Can PRADA flag feature discovery on binned Circles without flagging honest users?

Feature discovery (the attack on binned features) on the 2-D Circles target runs on each
seed; its fidelity is measured at budgets 10, 20, ... to find the query at which it first
reaches 99%. Its PRADA statistic W_n (Juuti et al. 2019, Algorithm 1: per-class growing
sets, minimum distances, Shapiro-Wilk W of the distances within 3 std) is compared, at
every n before that query, with W_n of 2,000 random orders of the owner's reference rows
and 2,000 of honest rows (rows no party used). For each n, the share of honest orders
with W_n at or below the attack's is the false-positive rate of the most favourable
single-n threshold (one just above the attack's W_n); 'best n' is the n where that
share is smallest (and, among those, the attack's W furthest below every honest
order's), the best any threshold at one n can do, and the share of honest orders at or below the
attack's curve at some n is what a curve of thresholds just above the attack's costs.

Run: OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 5 .venv/bin/python \\
     benchmarks/prada_feature_discovery.py [--seeds 10] [--orders 2000]
Writes benchmarks/results/prada_feature_discovery.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from stealml.defences.prada import (
    WIDEN,
    WINDOWS,
    distances,
    first_flag,
    honest_bands,
    honest_streams,
    w_curve,
    window_curve,
)
from stealml.experiments.defence_targets import (
    CASES,
    PER_N_MIN_SAMPLES,
    PER_N_ORDERS,
    build_target,
)
from stealml.experiments.prada_study import MIN_SAMPLES, _Recorder, _run
from stealml.experiments.tables import load_average, write_results

CASE = next(c for c in CASES if c.attack == "feature-discovery")
STEP = 10  # budgets at which fidelity is measured


def one_seed(seed: int, orders: int) -> dict[str, Any]:
    start = time.perf_counter()
    target = build_target(CASE.target, seed)
    _, mon = _run(target, CASE, seed, [_Recorder()], "log")
    record = mon._client("attacker")[0]
    X, labels = np.vstack(record.rows), np.concatenate(record.labels)
    n99 = None
    for budget in range(STEP, len(X) + STEP, STEP):
        run, _ = _run(target, dataclasses.replace(CASE, budget=min(budget, len(X))), seed,
                      [_Recorder()], "log")
        if (run.fidelity or 0.0) >= 0.99:
            n99 = min(budget, len(X))
            break
    n99 = n99 or len(X)
    # distances collected before the query that first reaches 99% (the first query of
    # each class gives none)
    seen: set[str] = set()
    dist_before = 0
    for label in labels[:n99 - 1]:
        dist_before += label in seen
        seen.add(label)
    D = distances(X, labels)[:dist_before]
    attack = w_curve(D, MIN_SAMPLES)
    prada = target.calibrated_prada()
    ns = np.arange(MIN_SAMPLES, MIN_SAMPLES + len(attack))
    thresholds = np.array([prada.threshold(int(n)) for n in ns])
    hit = np.flatnonzero(attack < thresholds)
    flag = first_flag(D, prada)
    # the bands calibrated_prada thresholds (the same orders: same arguments and seed)
    (centre, spread, c), bands = honest_bands(
        target.reference, target.model.predict(target.reference), PER_N_MIN_SAMPLES,
        prada.windows, PER_N_ORDERS, 20 * PER_N_ORDERS, random_state=seed)
    k = min(len(attack), len(centre))
    depth = (centre[:k] - attack[:k]) / spread[:k]
    row: dict[str, Any] = {"seed": seed, "queries": len(X), "99% at query": n99,
                           "distances before": dist_before,
                           "attack min W": float(attack.min()),
                           "at n": int(MIN_SAMPLES + np.argmin(attack))}
    row["threshold there"] = prada.threshold(row["at n"])
    row["W flag at n"] = int(ns[hit[0]]) if len(hit) else None
    row["per-n flag at n"] = flag[0] if flag else None
    row["flagged by"] = flag[1] if flag else None
    row["band c"] = c
    row["attack depth (spreads)"] = float(depth.max())
    row["depth at n"] = int(MIN_SAMPLES + np.argmax(depth))
    row["widen that flags it"] = float(depth.max() / c)
    for test, (w_centre, w_spread, w_c) in bands.items():
        k = int(test[1:])  # the windows' W bands ("W15", "W30")
        w = window_curve(D, k)
        j = min(len(w), len(w_centre))
        w_depth = float(((w_centre[:j] - w[:j]) / w_spread[:j]).max())
        row[f"W{k}: attack min"] = float(w.min())
        row[f"W{k}: at n"] = k + int(np.argmin(w))
        row[f"W{k}: band c"] = w_c
        row[f"W{k}: widen that flags it"] = w_depth / w_c
    for name, rows in (("reference", target.reference), ("honest", target.honest)):
        streams = honest_streams(rows, target.model.predict(rows), orders, max_rows=n99,
                                 random_state=seed)
        curves = [w_curve(h, MIN_SAMPLES) for h in streams]
        H = np.array([h[:min(len(h) for h in curves)] for h in curves])
        k = min(H.shape[1], len(attack))
        below = H[:, :k] <= attack[None, :k]
        share = below.mean(axis=0)
        gap = H[:, :k].min(axis=0) - attack[:k]
        best = int(np.argmax(np.where(share == share.min(), gap, -np.inf)))
        row[f"{name}: lowest honest W at the attack's lowest"] = float(
            H[:, row["at n"] - MIN_SAMPLES].min())
        row[f"{name}: best n"] = MIN_SAMPLES + best
        row[f"{name}: attack W there"] = float(attack[best])
        row[f"{name}: lowest honest W there"] = float(H[:, best].min())
        row[f"{name}: share at or below there"] = float(share[best])
        row[f"{name}: share at or below at some n"] = float(below.any(axis=1).mean())
        t_h = np.array([prada.threshold(n) for n in range(MIN_SAMPLES,
                                                           MIN_SAMPLES + H.shape[1])])
        row[f"{name}: flagged by W"] = float((H < t_h[None, :]).any(axis=1).mean())
        row[f"{name}: flagged by per-n"] = float(np.mean([first_flag(h, prada) is not None
                                                          for h in streams]))
        j = min(H.shape[1], len(centre))
        H_depth = ((centre[None, :j] - H[:, :j]) / spread[None, :j]).max(axis=1)
        row[f"{name}: depth at or beyond the attack's"] = float(
            (H_depth >= row["attack depth (spreads)"]).mean())
    row["seconds"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    load = load_average()
    rows = [one_seed(seed, args.orders) for seed in range(args.seeds)]
    cols = list(rows[0])
    notes = (
        f"{__doc__.split(chr(10) + chr(10))[1]}\n\n"
        f"{args.orders} orders each; n counts distances (PRADA's |D|), from {MIN_SAMPLES} "
        "(the per-n detector's start). 'threshold there': the calibrated per-n detector's "
        "threshold (stealml.defences.calibrate_prada) at the attack's lowest W; 'W "
        "flag at n': the first n before 99% at which the attack's W is below it; 'per-n "
        "flag at n': the first n at which any of the detector's tests flags it (W of all "
        f"distances, or W of the last k distances for k in {WINDOWS}, each against its "
        "own band), 'flagged by' which; 'Wk: widen that flags it': the same depth / c "
        "for the window's W. The "
        "thresholds are the band median_n - widen c spread_n (stealml.defences.w_band "
        "on 1,050 orders of the reference rows: 50 of up to half of them, 1,000 of 200; "
        f"spread the median less the 10% quantile; widen {WIDEN}); 'band c': the "
        "largest deviation of any calibration order, in spreads; 'attack depth': the "
        "attack's largest (median_n - W_n) / spread_n before 99%; 'widen that flags "
        "it': depth / c (the detector flags the attack when widen is below it); 'depth "
        "at or beyond the attack's': the share of the 2,000 orders as deep in the band "
        "as the attack at some n before 99% (what a band of this shape that flags the "
        "attack costs). "
        "'flagged by W' / 'flagged by per-n': the share of the orders flagged by the "
        "calibrated detector's test of all distances / by any of its tests (honest: rows "
        "no party used, never used to calibrate). The window sizes were chosen after "
        "seeing seeds 0-4; seeds 5-9 are held out. "
        f"Load average at the start {load}; one process, nice 5.")
    out = Path(__file__).resolve().parent / "results" / "prada_feature_discovery"
    for path in write_results(out, "PRADA and feature discovery on binned Circles", rows,
                              cols, notes):
        print(path)


if __name__ == "__main__":
    main()

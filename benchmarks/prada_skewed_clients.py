"""What PRADA's label test costs honest clients whose mix of cases is not the owner's
(issue 7: the detector's false positives where its premise does not hold).

The label test compares the shares of a client's queries in each predicted class with the
shares of the owner's rows. Honest clients drawn from the owner's population pass it (see
``prada_honest.py``); this measures clients that are honest but skewed: natural rows the
owner never used, in random orders, with the class the owner sees most often held to a
given share of the stream (its natural share, half of it, a quarter of it, or none).
For each target of the PRADA study and each seed, the per-n detector is calibrated as the
study calibrates it; each stream is replayed through it, and the streams flagged by the
label test (and by any test) are counted.

Run: OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/prada_skewed_clients.py \\
     [--seeds 0 1] [--streams 10] [--rows 400]
Writes benchmarks/results/prada_skewed_clients.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from stealml.experiments.defence_targets import TARGET_SPECS, build_target
from stealml.experiments.tables import load_average, write_results

MIXES = (("natural", None), ("majority class halved", 0.5), ("majority class at a quarter",
                                                                0.25), ("no majority class", 0.0))


def _stream(y: np.ndarray, major: str, scale: float | None, rows: int,
            rng: np.random.Generator) -> np.ndarray:
    """Row indices of one client: a random order of the rows, the majority class at
    ``scale`` times its natural share (None: as drawn), at most ``rows`` rows."""
    if scale is None:
        return rng.permutation(len(y))[:rows]
    majority = rng.permutation(np.flatnonzero(y == major))
    rest = rng.permutation(np.flatnonzero(y != major))
    share = scale * len(majority) / len(y)
    n = min(rows, int(len(rest) / (1 - share)))
    k = round(share * n)
    return rng.permutation(np.r_[majority[:k], rest[:n - k]])


def skewed(name: str, seed: int, streams: int, rows: int) -> list[dict[str, Any]]:
    start = time.perf_counter()
    target = build_target(name, seed)
    prada = target.calibrated_prada()
    owner = dict(prada.label_shares)
    major = max(owner, key=lambda c: owner[c])
    X = target.honest
    y = np.asarray(target.model.predict(X)).astype(str)
    out = []
    for mix, scale in MIXES:
        rng = np.random.default_rng([seed, 29])
        by_label, by_any, at, shares, lengths = 0, 0, [], [], []
        for _ in range(streams):
            idx = _stream(y, major, scale, rows, rng)
            state = prada.new_state()
            state.update(X[idx], y[idx])
            shares.append(float(np.mean(y[idx] == major)))
            lengths.append(len(idx))
            by_any += state.flagged_at is not None
            if state.flagged_by == "L":
                by_label += 1
                at.append(state.flagged_at)
        out.append({"target": name, "seed": seed, "client's mix": mix,
                    "owner's majority class": f"{major} ({owner[major]:.0%})",
                    "client's share of it": f"{min(shares):.0%}-{max(shares):.0%}",
                    "queries": f"{min(lengths)}-{max(lengths)}", "streams": streams,
                    "flagged by L": by_label, "flagged by any test": by_any,
                    "L flag at query": "-" if not at else f"{min(at)}-{max(at)}",
                    "seconds": round(time.perf_counter() - start, 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="PRADA's label test on skewed honest clients")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--targets", nargs="+", default=list(TARGET_SPECS))
    args = parser.parse_args()
    load_start = load_average()
    rows: list[dict[str, Any]] = []
    for name in args.targets:
        for seed in args.seeds:
            rows += skewed(name, seed, args.streams, args.rows)
            print(rows[-1], flush=True)
    notes = (f"Per-n PRADA detector as the PRADA study calibrates it (all eight tests, "
             f"label test included). Each client: a random order of up to {args.rows} "
             f"natural rows the owner never used (the test split and the training half "
             f"the owner does not hold), with the class the owner sees most often held "
             f"to its natural share, half of it, a quarter of it, or none; "
             f"{args.streams} streams per target, seed and mix. 'flagged by L': streams "
             f"the label test flags first; 'flagged by any test': by any of the eight. "
             f"The label test's premise is that honest clients' cases are a sample of the "
             f"owner's population; these clients break it on purpose, and an owner "
             f"whose clients do should calibrate without it (`--no-label-test`). The "
             f"paper has no such measurement. Load average at start {load_start}, at end "
             f"{load_average()}.")
    out = Path(__file__).resolve().parent / "results"
    for path in write_results(out / "prada_skewed_clients", "PRADA's label test on honest "
                              "clients whose mix of cases is not the owner's", rows,
                              list(rows[0]), notes):
        print(path)


if __name__ == "__main__":
    main()

"""Bottom-up path finding over many seeds: is it exact on every run, and what does it cost?

Table 6 reruns each attack with seeds 0-4. A seed fixes the random start and the random
choices; a hidden leaf that only some orders of search find shows up as a run that is not
exact now and then. This script runs bottom-up on Table 6 trees (default: the
contraceptive stand-in for the paper's Steak tree, 63 identities for 193 leaves, the
hardest case) over a range of seeds and reports each run's queries and fidelity, and per
tree the mean and worst over the range, beside the paper's Algorithm 1 on that tree.

Run: OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bottom_up_seeds.py \\
     [--tree "Steak Survey (substitute)" ...] [--seeds 120 ...] [--first-seed 0]
Writes benchmarks/results/bottom_up_seeds.{json,md} and bottom_up_seeds-runs.json (1.5 s a
seed on one core on the contraceptive tree, 5 s on spambase). The committed results:
every Table 6 tree, 120 seeds on the Steak stand-in and 30 on the others (``--tree`` with
the seven names of stealml.experiments.table6.TREES in order, ``--seeds 30 30 120 30 30 30
30``).
Seeds 0-59 were looked at while choosing the corner checks (0ddb27c); seeds 60-119 were
held out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from stealml.attacks import PathFinding
from stealml.datasets import load
from stealml.experiments.progress import track
from stealml.experiments.table6 import (
    BIGML_DECIMALS,
    EPSILON,
    TREES,
    TreeCase,
    fit_tree,
    run_attack,
)
from stealml.experiments.tables import write_results
from stealml.metrics import R_UNIF_POINTS

RESULTS = Path(__file__).resolve().parent / "results"


def _tree_runs(case: TreeCase, seeds: range) -> tuple[list[dict[str, Any]], int]:
    ds = load(case.data, random_state=0)
    tree = fit_tree(case, ds)
    X_unif = ds.space.sample_encoded(R_UNIF_POINTS, 0)
    leaves = tree.get_n_leaves()
    runs = []
    for seed in track(seeds, f"bottom-up on {case.data}"):
        r = run_attack(PathFinding(epsilon=EPSILON, random_state=seed), tree, ds,
                       BIGML_DECIMALS, X_unif)
        runs.append({"tree": case.paper, "seed": seed, "queries": r["queries"],
                     "q/leaf": round(r["queries"] / leaves, 2),
                     "leaves found": r["leaves_found"],
                     "1-R_test": round(r["test"], 6), "1-R_unif": round(r["unif"], 6),
                     "exact": r["test"] == 1.0 and r["unif"] == 1.0,
                     "seconds": round(r["seconds"], 3)})
    return runs, leaves


def _row(case: TreeCase, leaves: int, name: str, part: list[dict[str, Any]]) -> dict[str, Any]:
    q = np.array([r["q/leaf"] for r in part])
    paper = case.paper_bottom_up[0] / case.paper_shape[0]
    return {
        "tree": f"{case.data} ({case.paper}, {leaves} leaves)", "runs": name,
        "exact runs": f"{sum(r['exact'] for r in part)} of {len(part)}",
        "worst 1-R_test / 1-R_unif": (
            f"{100 * min(r['1-R_test'] for r in part):.2f}% / "
            f"{100 * min(r['1-R_unif'] for r in part):.2f}%"),
        "mean q/leaf": round(float(q.mean()), 2),
        "median / max q/leaf": f"{np.median(q):.1f} / {q.max():.1f}",
        "paper bottom-up q/leaf (1-R)": f"{paper:.2f} ({case.paper_bottom_up[1]})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", nargs="+", default=["Steak Survey (substitute)"],
                        choices=[case.paper for case in TREES],
                        help="Table 6 trees by the paper's name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[120],
                        help="seeds per tree (one number, or one per --tree)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "bottom_up_seeds")
    args = parser.parse_args()
    if len(args.seeds) not in (1, len(args.tree)):
        parser.error(f"--seeds takes one number or one per --tree ({len(args.tree)}), "
                     f"not {len(args.seeds)}")
    counts = args.seeds * len(args.tree) if len(args.seeds) == 1 else args.seeds
    rows, runs = [], []
    for name, n in zip(args.tree, counts, strict=True):
        case = next(c for c in TREES if c.paper == name)
        seeds = range(args.first_seed, args.first_seed + n)
        tree_runs, leaves = _tree_runs(case, seeds)
        runs += tree_runs
        parts = [(f"seeds {lo}-{hi}", [r for r in tree_runs if lo <= r["seed"] <= hi])
                 for lo, hi in ((seeds[0], min(59, seeds[-1])),
                                (max(60, seeds[0]), seeds[-1])) if lo <= hi]
        if len(parts) > 1:
            parts.append((f"all seeds {seeds[0]}-{seeds[-1]}", tree_runs))
        rows += [_row(case, leaves, part_name, part) for part_name, part in parts]
    missed = [r for r in runs if not r["exact"]]
    notes = (
        f"Bottom-up path finding (PathFinding, defaults, epsilon {EPSILON}) on Table 6 "
        f"trees, served as in table6.md (label and confidence to {BIGML_DECIMALS} "
        "decimals). A run is exact when the stolen tree answers as the target on every "
        "test row and on 10,000 uniform rows. On the contraceptive tree, seeds 0-59 were "
        "looked at while the corner checks were chosen and seeds 60-119 were held out; "
        "on the other trees seeds 0-7 were looked at (adult also 12 and 16). Paper: "
        "Tramèr et al. 2016, Table 6 (Algorithm 1; on its Steak Survey tree it stopped "
        "short of exact). Every run is "
        f"in `{args.out.name}-runs.json`. Runs not exact: " + (
            "; ".join(f"{r['tree']} seed {r['seed']} ({100 * r['1-R_test']:.2f}% / "
                      f"{100 * r['1-R_unif']:.2f}%)" for r in missed) or "none") + ".")
    for path in write_results(args.out, "Bottom-up path finding over many seeds", rows,
                              list(rows[0]), notes):
        print(path)
    (args.out.parent / f"{args.out.name}-runs.json").write_text(
        json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Equation solving on binary logistic regression: queries and fidelity per data set.

The paper (section 4.1.1): d + 1 queries extract a binary LR with R_test = R_unif = 0 and
R_TV < 1e-9 (41 queries on average over its data sets, 113 at most).

Run: .venv/bin/python benchmarks/equation_solving_binary.py [--seeds 5]
Writes benchmarks/results/equation_solving_binary.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from stealml.attacks import EquationSolving
from stealml.datasets import load
from stealml.experiments.tables import write_results
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle

DATASETS = ["circles", "moons", "breast-cancer", "diabetes", "mushrooms", "adult-income",
            "german-credit", "spambase"]
RESULTS = Path(__file__).resolve().parent / "results" / "equation_solving_binary"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name in DATASETS:
        per_seed = []
        for seed in range(args.seeds):
            ds = load(name, random_state=seed)
            target = LogisticRegression(max_iter=5000).fit(ds.X_train, ds.y_train)
            start = time.perf_counter()
            result = EquationSolving(random_state=seed).run(LocalOracle(target, ds.space))
            seconds = time.perf_counter() - start
            fid = fidelity(target, result.model, ds.space, ds.X_test, random_state=seed)
            per_seed.append({"queries": result.queries, "seconds": seconds, **fid,
                             "complete": result.complete})
        d = ds.X.shape[1]
        rows.append({
            "data set": name, "d": d, "unknowns (d+1)": d + 1,
            "queries (mean)": float(np.mean([r["queries"] for r in per_seed])),
            "queries (max)": int(max(r["queries"] for r in per_seed)),
            "paper queries": d + 1 if name != "german-credit" and name != "spambase" else None,
            "R_test (max)": max(r["r_test"] for r in per_seed),
            "R_unif (max)": max(r["r_unif"] for r in per_seed),
            "R_TV test (max)": max(r["tv_test"] for r in per_seed),
            "R_TV unif (max)": max(r["tv_unif"] for r in per_seed),
            "paper R_test / R_unif / R_TV": "0 / 0 / <1e-9",
            "seconds (mean)": float(np.mean([r["seconds"] for r in per_seed])),
            "all complete": all(r["complete"] for r in per_seed),
            "seeds": args.seeds,
        })
        print(rows[-1])
    columns = ["data set", "unknowns (d+1)", "queries (mean)", "queries (max)",
               "paper queries", "R_test (max)", "R_unif (max)", "R_TV test (max)",
               "R_TV unif (max)", "paper R_test / R_unif / R_TV", "seconds (mean)",
               "all complete"]
    notes = (
        "Binary logistic regression targets (scikit-learn, default C=1) trained on each data "
        "set's 70% split in the paper's encoding; the attack sees class probabilities at "
        "full precision. R_unif on 10,000 uniform points of the feature space. Paper: "
        "Tramèr et al. 2016, section 4.1.1 (d+1 queries; 41 on average, 113 at most over its "
        "data sets; R_TV < 1e-9). Ours: exactly d+1 queries on every seed: the origin "
        "of the model space (where the logit is the model's bias), then one step along "
        "each column from the most moderate point asked, each step as long as the room "
        "before saturation allows, so every answer is an exact equation (before: a "
        "centre search spent up to 9 more on Adult, whose uniform rows are often "
        "saturated). german-credit and "
        "spambase are not in the paper's equation-solving experiments.")
    write_results(RESULTS, "Equation solving, binary logistic regression", rows, columns, notes)


if __name__ == "__main__":
    main()

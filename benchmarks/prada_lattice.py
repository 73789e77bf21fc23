"""Do honest rows stay on the lattice the owner's rows lie on? (issue 7, PRADA's grid test)

PRADA's grid test (``stealml.defences.likelihood.lattice``) keeps the features whose values
in the owner's reference rows lie on a lattice (integer scores, counts, one-hot and ordinal
codes, in the model space's scaling) and flags a client at its third query off it. Its
premise is that no natural row falls off. For every data set of the PRADA study and seeds
0-34 (the study's splits: the owner keeps half of the training split, honest clients send
the test split and the other half), this counts the features on a lattice and the honest
and test rows off it. An honest row off the lattice would be a false-positive risk; the
grid test flags no honest stream of any order if none is.

Run: PYTHONPATH=src .venv/bin/python benchmarks/prada_lattice.py [--seeds 35]
Writes benchmarks/results/prada_lattice.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stealml.datasets import load
from stealml.defences.likelihood import lattice, off_grid
from stealml.experiments.defence_targets import TARGET_SPECS, _split
from stealml.experiments.tables import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description="honest rows against the owner's lattice")
    parser.add_argument("--seeds", type=int, default=35)
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "results"
    rows = []
    for data in dict.fromkeys(spec[0] for spec in TARGET_SPECS.values()):
        targets = [name for name, spec in TARGET_SPECS.items() if spec[0] == data]
        gridded, honest_off, test_off, honest_rows, owner_rows = [], 0, 0, 0, []
        for seed in range(args.seeds):
            ds = load(data, random_state=seed)
            reference, honest = _split(ds, seed)
            grid = lattice(reference)
            gridded.append(len(grid))
            owner_rows.append(len(reference))
            honest_rows += len(honest)
            honest_off += int(off_grid(honest, grid).sum())
            test_off += int(off_grid(ds.X_test, grid).sum())
        rows.append({"data set": data, "targets": ", ".join(targets),
                     "features": int(reference.shape[1]),
                     "features on a lattice": f"{min(gridded)}-{max(gridded)}",
                     "owner's rows": f"{min(owner_rows)}-{max(owner_rows)}",
                     "honest rows (all seeds)": honest_rows,
                     "honest rows off it": honest_off, "test rows off it": test_off})
        print(rows[-1], flush=True)
    notes = (f"Seeds 0-{args.seeds - 1}, the PRADA study's splits (stealml.experiments."
             "defence_targets._split): the owner's reference rows are half of the training "
             "split without repeats; honest rows are the test split and the other half. A "
             "feature is on a lattice when its 2-64 distinct values in the owner's rows are "
             "an origin plus whole steps (the smallest gap over 1-12); a row is off it when "
             "a value lies more than 1e-6 steps from every point. The paper has no such "
             "test (no paper number to compare).")
    for path in write_results(out / "prada_lattice", "PRADA's grid test: honest rows off the "
                              "owner's lattice", rows, list(rows[0]), notes=notes):
        print(path)


if __name__ == "__main__":
    main()

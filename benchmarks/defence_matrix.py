"""The defence matrix (issue 7, parts 2 and 6): every attack against every defence.

Run: PYTHONPATH=src .venv/bin/python benchmarks/defence_matrix.py [--quick | --fill] [--seed N]
Writes benchmarks/results/defence_matrix.{json,md,png}, defence_utility.{json,md},
defence_detection.{json,md} and defence_reference.{json,md}
(the same as `stealml reproduce defence-matrix --out benchmarks/results`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stealml.experiments.defence_matrix import defence_matrix, fill_cells


def main() -> None:
    parser = argparse.ArgumentParser(description="Attacks against defences")
    parser.add_argument("--quick", action="store_true",
                        help="binary LR, tree and binned circles against nine defences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fill", action="store_true",
                        help="only measure the cells missing from the committed matrix")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "results"
    if args.fill:
        for path in fill_cells(out, seed=args.seed):
            print(path)
        return
    for path in defence_matrix(out, quick=args.quick, seed=args.seed):
        print(path)


if __name__ == "__main__":
    main()

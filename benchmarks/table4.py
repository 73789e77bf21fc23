"""Table 4 of the paper (equation solving on Adult-Race) and every data set of Table 3.

Run: .venv/bin/python benchmarks/table4.py [--quick]
Writes benchmarks/results/table4.{json,md} and equation_solving_all.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stealml.experiments.table4 import reproduce


def main() -> None:
    parser = argparse.ArgumentParser(description="Table 4 and the all-data-sets table")
    parser.add_argument("--quick", action="store_true", help="one seed, MLP up to k")
    args = parser.parse_args()
    for path in reproduce(Path(__file__).resolve().parent / "results", quick=args.quick):
        print(path)


if __name__ == "__main__":
    main()

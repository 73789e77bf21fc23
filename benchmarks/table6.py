"""Table 6: bottom-up and top-down path finding on trees shaped like the paper's.

Runs ``stealml reproduce table6`` (see stealml.experiments.table6) into
benchmarks/results/: table6.{json,md} and table6_rounding.{json,md}.

Run: .venv/bin/python benchmarks/table6.py [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stealml.experiments.table6 import reproduce

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="German credit and one "
                        "regression tree only")
    args = parser.parse_args()
    for path in reproduce(RESULTS, quick=args.quick):
        print(path)


if __name__ == "__main__":
    main()

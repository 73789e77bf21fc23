"""Tables 1 and 7: the paper's online attacks against ``stealml serve`` on loopback.

Runs ``stealml reproduce table7`` and ``table1`` (see stealml.experiments.online) into
benchmarks/results/: table7.{json,md} and table1.{json,md}.

Run: .venv/bin/python benchmarks/online.py [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stealml.experiments.online import table1, table7

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 uniform evaluation "
                        "points; no finer-epsilon rows; no Steak-Survey tree")
    args = parser.parse_args()
    for path in table7(RESULTS, quick=args.quick) + table1(RESULTS, quick=args.quick):
        print(path)


if __name__ == "__main__":
    main()

"""Labels-only extraction: the paper's Figures 4, 5, 6 and its MLP result (section 6.3).

Run: .venv/bin/python benchmarks/labels_only.py [--full] [--only figure4 figure6 ...]
Writes benchmarks/results/figure{4,5,6}{.json,.md,.png,-runs.json,-runs.md} and mlp.{json,md}
(--quick grid by default: alpha in {1, 10, 100}, one seed; --full: the paper's alphas,
three seeds). Finished jobs are kept in benchmarks/results/jobs.sqlite (not committed):
a run stopped part-way resumes where it stopped, as long as the code is unchanged.
--strategies runs some strategies only; with --keep-earlier the other strategies' rows are
taken from the committed NAME-runs.json (an earlier run, which --note should name).
--attack-seeds N instead runs the two adaptive strategies at alpha 0.5, 1 and 2 with N
attack seeds per target, into NAME-attack-seeds.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stealml.experiments.labels_only import FIGURES, mlp_row, run_attack_seeds, run_figure
from stealml.experiments.store import JOBS_STORE

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="The paper's whole grid.")
    parser.add_argument("--only", nargs="*", default=[*FIGURES, "mlp"],
                        choices=[*FIGURES, "mlp"], help="Which results to make.")
    parser.add_argument("--seeds", type=int, default=None, help="Seeds per data set.")
    parser.add_argument("--datasets", nargs="*", default=None, metavar="NAME=SEEDS",
                        help="Only these data sets, each with its number of seeds.")
    parser.add_argument("--jobs", type=int, default=2, help="Worker processes.")
    parser.add_argument("--strategies", nargs="*", default=None,
                        help="Only these strategies (e.g. 'adaptive (ours)').")
    parser.add_argument("--keep-earlier", action="store_true",
                        help="Keep the other strategies' rows of the committed runs file.")
    parser.add_argument("--note", default="", help="Appended to the results' notes.")
    parser.add_argument("--attack-seeds", type=int, default=None,
                        help="Small budgets only, this many attack seeds per target.")
    args = parser.parse_args()
    seeds = ({d: int(n) for d, n in (x.split("=") for x in args.datasets)}
             if args.datasets else args.seeds)
    if args.attack_seeds:
        for name in (n for n in args.only if n != "mlp"):
            for path in run_attack_seeds(name, RESULTS, attack_seeds=args.attack_seeds,
                                         seeds=seeds, n_jobs=args.jobs,
                                         store=RESULTS / JOBS_STORE, note=args.note):
                print(path)
        return
    for name in args.only:
        earlier = (json.loads((RESULTS / f"{name}-runs.json").read_text())["rows"]
                   if args.keep_earlier and name != "mlp" else [])
        paths = (mlp_row(RESULTS, quick=not args.full) if name == "mlp"
                 else run_figure(name, RESULTS, quick=not args.full, seeds=seeds,
                                 n_jobs=args.jobs, store=RESULTS / JOBS_STORE,
                                 strategies=args.strategies, earlier=earlier,
                                 note=args.note))
        for path in paths:
            print(path)


if __name__ == "__main__":
    main()

"""The ``stealml`` command: parses, calls the library, prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stealml import __version__
from stealml.attacks import ATTACKS, get_attack
from stealml.attacks.params import check_attack_params, parse_param_items
from stealml.defences.prada import LABEL_LEVEL
from stealml.exceptions import ConfigurationError, StealmlError
from stealml.ledger import Ledger
from stealml.targets import MODEL_KINDS

err_console = Console(stderr=True)
out_console = Console()


class StealmlGroup(click.Group):
    """Turns library errors into one line on stderr and a non-zero exit, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StealmlError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # a file or folder that cannot be read or written
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: every answer paid for so far is in the query log "
                       "(if --log was given); run the same command again to replay them",
                       err=True)
            ctx.exit(130)


@click.group(cls=StealmlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stealml")
def main() -> None:
    """How cheaply can the model behind a prediction API be stolen?

    Train targets, run extraction attacks against them through a query-accounting
    oracle, and measure the fidelity of the stolen model.
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets(as_json: bool) -> None:
    """List the offline data sets: rows, features, classes and source."""
    from stealml.datasets import list_datasets

    infos = list_datasets()
    if as_json:
        click.echo(json.dumps([_info_dict(i) for i in infos], indent=2))
        return
    table = Table("name", "rows", "features", "classes", "paper (rows×features)", "source")
    for i in infos:
        paper = (f"{i.paper_rows}×{i.paper_features}" if i.paper_rows else "-")
        table.add_row(i.name, str(i.rows), str(i.features),
                      "-" if i.classes is None else str(i.classes), paper, i.source)
    out_console.print(table)


def _info_dict(info: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(info)


@main.command()
@click.option("--data", required=True, help="Data set name (see `stealml datasets`).")
@click.option("--model", "kind", required=True, type=click.Choice(list(MODEL_KINDS)),
              help="Kind of target model.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split and model.")
@click.option("--max-leaves", type=click.IntRange(min=2), default=None,
              help="Trees: most leaves.")
@click.option("--max-depth", type=click.IntRange(min=1), default=None, help="Trees: most depth.")
@click.option("--epsilon", type=float, default=None,
              help="dp-logreg: the differential-privacy budget (default 1.0).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the target (.skops).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def train(data: str, kind: str, seed: int, max_leaves: int | None, max_depth: int | None,
          epsilon: float | None, out: str, as_json: bool) -> None:
    """Train a target model on a data set and save it with its feature space."""
    from stealml.experiments.training import train_target

    with _spinner(f"training {kind} on {data}", enabled=not as_json):
        report = train_target(data, kind, out, seed=seed, max_leaves=max_leaves,
                              max_depth=max_depth, epsilon=epsilon)
    if as_json:
        click.echo(json.dumps(report))
    else:
        private = f" (epsilon {report['epsilon']:g})" if "epsilon" in report else ""
        click.echo(f"trained {kind}{private} on {data}: {report['features']} features, "
                   f"test {report['metric']} {report['score']:.4f}, saved to {out}")


def _defence_options(command: Any) -> Any:
    """Output defences and extraction monitors, shared by ``extract`` and ``serve``."""
    options = [
        click.option("--noise", type=click.FloatRange(min=0), default=None,
                     help="Gaussian noise (std) on probabilities, clipped and renormalised."),
        click.option("--noise-seed", type=int, default=0, show_default=True,
                     help="Seed of --noise (with each query's bytes)."),
        click.option("--reverse-sigmoid", type=(float, float), default=None,
                     metavar="BETA GAMMA", help="Lee et al.'s reverse-sigmoid perturbation."),
        click.option("--monitor", "monitors", multiple=True,
                     type=click.Choice(["prada", "ood"]),
                     help="Extraction monitor per client; repeat for both "
                          "(ood: --data's training split, or --ood-reference)."),
        click.option("--on-flag", type=click.Choice(["block", "labels", "noise", "log"]),
                     default="block", show_default=True,
                     help="What a client flagged by --monitor gets."),
        click.option("--prada-delta", type=float, default=0.9, show_default=True,
                     help="PRADA's threshold on the Shapiro-Wilk W."),
        click.option("--prada-calibration", type=click.Path(dir_okay=False, exists=True),
                     default=None,
                     help="PRADA's per-n thresholds instead of --prada-delta: a .json from "
                          "`stealml calibrate-prada`, or a .npy of the owner's rows in the "
                          "model space (calibrated on before the first query)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.option("--target", type=click.Path(dir_okay=False), default=None,
              help="Target model file (.skops, .onnx); or give --url.")
@click.option("--url", default=None,
              help="A prediction service's base URL instead of --target.")
@click.option("--model", "model_name", default=None,
              help="--url: the model's name (optional when the service has one).")
@click.option("--api-key", envvar="STEALML_API_KEY", default=None,
              help="--url: the service's API key (or STEALML_API_KEY).")
@click.option("--protocol", type=click.Choice(["stealml", "v2"]), default="stealml",
              show_default=True, help="--url: stealml's API, or the Open Inference Protocol.")
@click.option("--eval-queries", type=click.IntRange(min=0), default=10_000,
              show_default=True,
              help="--url: uniform points bought to measure fidelity, apart from the attack's.")
@click.option("--space", type=click.Path(dir_okay=False), default=None,
              help="FeatureSpace JSON (default: the target file's, else [-1, 1]^d).")
@click.option("--attack", required=True, type=click.Choice(sorted(ATTACKS)),
              help="Attack to run.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter of the attack's constructor (repeatable), e.g. "
                   "--param checks=0 --param epsilon=1e-4 (an unknown KEY lists them).")
@click.option("--budget", type=int, default=None, help="Most queries to pay for.")
@click.option("--alpha", type=float, default=None,
              help="Budget as alpha × the model class's unknowns.")
@click.option("--output", type=click.Choice(["probabilities", "labels", "top-k"]),
              default="probabilities", show_default=True,
              help="What the API reveals (--url: labels reads the service's labels only).")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="With --output top-k.")
@click.option("--rounding", type=click.IntRange(0, 16), default=None,
              help="The API rounds probabilities to this many decimals.")
@_defence_options
@click.option("--price", type=float, default=0.0001, show_default=True,
              help="Dollars per query (Amazon's 2016 price by default).")
@click.option("--seed", default=0, show_default=True, help="Seed of the attack.")
@click.option("--log", type=click.Path(dir_okay=False), default=None,
              help="SQLite query log: paid answers are kept and replayed on a rerun.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to save the stolen model (.skops).")
@click.option("--data", default=None, help="Data set whose test split measures R_test.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Most queries per request.")
@click.option("--model-class",
              type=click.Choice(["logreg", "softmax", "ovr", "mlp", "kernel-logreg"]),
              default=None, help="equation-solving: the target's model class "
              "(default: read from a local target).")
@click.option("--prada-calibrate", is_flag=True,
              help="--monitor prada: per-n thresholds calibrated on --data's training split.")
@click.option("--trusted", is_flag=True, help="Load types outside scikit-learn and pickles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def extract(target: str | None, url: str | None, model_name: str | None,
            api_key: str | None, protocol: str, eval_queries: int, space: str | None,
            attack: str, params: tuple[str, ...], budget: int | None, alpha: float | None,
            output: str,
            top_k: int | None, rounding: int | None, noise: float | None, noise_seed: int,
            reverse_sigmoid: tuple[float, float] | None, monitors: tuple[str, ...],
            on_flag: str, prada_delta: float, prada_calibration: str | None, price: float,
            seed: int, log: str | None, out: str | None, data: str | None,
            batch_size: int | None, model_class: str | None, prada_calibrate: bool,
            trusted: bool, as_json: bool) -> None:
    """Steal a target (a model file, or a model behind --url) through a query-accounting
    oracle and report fidelity and cost."""
    from stealml.experiments.runner import ExtractionConfig, run_extraction

    if (target is None) == (url is None):
        raise ConfigurationError("give either --target FILE or --url URL")
    attack_params = parse_param_items(params)
    check_attack_params(get_attack(attack), attack_params)
    config = ExtractionConfig(target=target or str(url), attack=attack, space=space,
                              budget=budget, alpha=alpha,
                              output=output,  # type: ignore[arg-type]
                              rounding=rounding, price=price, seed=seed, log=log, out=out,
                              data=data, trusted=trusted, batch_size=batch_size,
                              protocol=None if url is None else protocol,  # type: ignore[arg-type]
                              model=model_name, api_key=api_key, eval_queries=eval_queries,
                              model_class=model_class, top_k=top_k, noise=noise,
                              noise_seed=noise_seed, reverse_sigmoid=reverse_sigmoid,
                              monitors=monitors, prada_delta=prada_delta,
                              prada_calibration=prada_calibration,
                              prada_calibrate=prada_calibrate,
                              on_flag=on_flag,  # type: ignore[arg-type]
                              attack_params=tuple(attack_params.items()))
    with _query_progress(enabled=not as_json and sys.stderr.isatty()) as progress:
        _, report = run_extraction(config, progress=progress)
    if as_json:
        keys = ("attack", "target", "queries", "replayed", "cost", "seconds", "fidelity",
                "budget", "complete", "eval_queries", "eval_cost", "detection")
        click.echo(json.dumps({k: report[k] for k in keys if k in report}))
        return
    _print_report(report, out)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if value != 0 else "0"
    return str(value)


def _print_report(report: dict[str, Any], out: str | None) -> None:
    fid = report["fidelity"]
    table = Table(title=f"{report['attack']} on {report['target']}", show_header=False)
    rows = [("queries paid", report["queries"]), ("replayed from log", report["replayed"]),
            ("cost ($)", f"{report['cost']:.4f}"), ("seconds", f"{report['seconds']:.3f}"),
            ("complete", report["complete"])]
    rows += [(k.replace("_", " ").replace("r ", "R_").replace("tv ", "R_TV "), _fmt(v))
             for k, v in fid.items()]
    if "eval_queries" in report:
        rows.append(("evaluation queries (not in the attack's)", report["eval_queries"]))
    for name, record in (report.get("detection") or {}).items():
        at = record.get("flagged_at")
        rows.append((f"{name} monitor", f"flagged after query {at}" if at else
                     f"not flagged ({record.get('queries')} queries)"))
    info = report.get("info") or {}
    rows += [(key, info[key]) for key in ("warning", "message") if info.get(key)]
    if out:
        rows.append(("stolen model", out))
    for k, v in rows:
        table.add_row(str(k), str(v))
    out_console.print(table)


@main.command()
@click.option("--target", required=True, type=click.Path(dir_okay=False),
              help="Target model file.")
@click.option("--stolen", required=True, type=click.Path(dir_okay=False),
              help="Extracted model file.")
@click.option("--space", type=click.Path(dir_okay=False), default=None,
              help="FeatureSpace JSON (default: the target file's, else [-1, 1]^d).")
@click.option("--data", default=None, help="Data set whose test split measures R_test.")
@click.option("--seed", default=0, show_default=True, help="Seed of split and uniform points.")
@click.option("--trusted", is_flag=True, help="Load types outside scikit-learn and pickles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(target: str, stolen: str, space: str | None, data: str | None, seed: int,
             trusted: bool, as_json: bool) -> None:
    """Measure how closely STOLEN matches TARGET (R_test, R_unif, R_TV)."""
    from stealml.experiments.evaluation import evaluate_files

    report = evaluate_files(target, stolen, space=space, data=data, seed=seed,
                            trusted=trusted)
    if as_json:
        click.echo(json.dumps(report))
        return
    table = Table("measure", "value", title=f"{stolen} against {target}")
    for k, v in report["fidelity"].items():
        table.add_row(k, _fmt(v))
    out_console.print(table)


@main.command()
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), default="reproduction",
              show_default=True, help="Folder for the JSON, Markdown and PNG files.")
@click.option("--quick", is_flag=True, help="Fewer seeds and budgets.")
@click.option("--only", default=None,
              help="With `all`: a comma-separated subset of the reproductions.")
def reproduce(name: str, out: str, quick: bool, only: str | None) -> None:
    """Reproduce one of the paper's tables or figures (e.g. table4, figure7), or `all`
    of them into one report (report.md, report.html, a folder per reproduction)."""
    from pathlib import Path

    from stealml.experiments.reproduce import REPRODUCTIONS, run_reproduction

    if name != "all":
        if only is not None:
            raise ConfigurationError("--only goes with `stealml reproduce all`")
        for path in run_reproduction(name, Path(out), quick=quick):
            click.echo(str(path))
        return
    from stealml.experiments.report import reproduce_all

    names = None
    if only is not None:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in REPRODUCTIONS]
        if unknown or not names:
            raise ConfigurationError(f"unknown reproduction(s) {', '.join(unknown) or '-'}; "
                                     f"choose from: {', '.join(REPRODUCTIONS)}")
    runs = reproduce_all(out, quick=quick, names=names,
                         announce=lambda line: click.echo(line, err=True))
    failed = [r.name for r in runs if not r.ok]
    click.echo(str(Path(out) / "report.md"))
    click.echo(str(Path(out) / "report.html"))
    if failed:
        click.echo(f"error: {len(failed)} of {len(runs)} reproductions failed: "
                   f"{', '.join(failed)} (their errors are in the report)", err=True)
        sys.exit(1)


@main.command()
@click.option("--target", type=click.Path(dir_okay=False), default=None,
              help="The model file (.skops, .onnx), served locally; or give --url.")
@click.option("--url", default=None, help="A prediction service's base URL.")
@click.option("--model", "model_name", default=None,
              help="--url: the model's name (optional when the service has one).")
@click.option("--api-key", envvar="STEALML_API_KEY", default=None,
              help="--url: the service's API key (or STEALML_API_KEY).")
@click.option("--protocol", type=click.Choice(["stealml", "v2"]), default="stealml",
              show_default=True, help="--url: stealml's API, or the Open Inference Protocol.")
@click.option("--space", type=click.Path(dir_okay=False), default=None,
              help="FeatureSpace JSON (--target without one; --protocol v2).")
@click.option("--data", default=None,
              help="Data set whose test split also measures fidelity (default: the one "
                   "the model file names).")
@click.option("--budget-dollars", type=float, default=1.0, show_default=True,
              help="The largest budget tried per attack, in dollars (the assessment tries "
                   "growing budgets, so it spends more: the report says how much).")
@click.option("--price", type=float, default=None,
              help="Dollars per query [default: the service's price; 0.0001 for --target].")
@click.option("--max-queries", type=int, default=20_000, show_default=True,
              help="Most queries each attack may make, whatever the price.")
@click.option("--eval-queries", type=int, default=2_000, show_default=True,
              help="Uniform points bought to measure fidelity, apart from the attacks'.")
@click.option("--output", type=click.Choice(["probabilities", "labels"]),
              default="probabilities", show_default=True,
              help="--target: what the local API reveals.")
@click.option("--rounding", type=click.IntRange(0, 16), default=None,
              help="--target: the local API rounds probabilities to this many decimals.")
@click.option("--model-class",
              type=click.Choice(["logreg", "softmax", "ovr", "mlp", "kernel-logreg"]),
              default=None, help="--url: the model class equation solving assumes.")
@click.option("--attack", "attacks", multiple=True, type=click.Choice(sorted(ATTACKS)),
              help="Only these attacks (repeat) [default: all that apply].")
@click.option("--no-defences", is_flag=True, help="Skip the defence evaluation.")
@click.option("--all-defences", is_flag=True,
              help="Every defence of the defence matrix, not one of each kind.")
@click.option("--seed", default=0, show_default=True, help="Seed of attacks and probes.")
@click.option("--trusted", is_flag=True, help="Load types outside scikit-learn and pickles.")
@click.option("--out", type=click.Path(file_okay=False), default="assessment",
              show_default=True, help="Folder for assessment.{md,html,json} and the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def assess(target: str | None, url: str | None, model_name: str | None, api_key: str | None,
           protocol: str, space: str | None, data: str | None, budget_dollars: float,
           price: float | None, max_queries: int, eval_queries: int, output: str,
           rounding: int | None, model_class: str | None, attacks: tuple[str, ...],
           no_defences: bool, all_defences: bool, seed: int, trusted: bool, out: str,
           as_json: bool) -> None:
    """Assess one deployed model: what its API reveals, which attacks steal it for how
    many queries and dollars (99%, 99.9%, 100% fidelity), and which defences stop them
    at what cost. Writes a one-page HTML and Markdown report."""
    from stealml.experiments.assess import AssessConfig
    from stealml.experiments.assess import assess as run_assess

    config = AssessConfig(target=target, url=url, model=model_name, api_key=api_key,
                          protocol=protocol, space=space, data=data, trusted=trusted,
                          output=output, rounding=rounding, budget_dollars=budget_dollars,
                          price=price, max_queries=max_queries, eval_queries=eval_queries,
                          model_class=model_class, attacks=list(attacks) or None,
                          defences=not no_defences, all_defences=all_defences, seed=seed,
                          out=out)
    config.check()
    announce = None if as_json else (lambda line: click.echo(line, err=True))
    report = run_assess(config, announce=announce)
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    table = Table("attack", "99%", "99.9%", "100%", "best", title=f"{report['target']}")
    for e in report["attacks"]:
        cells = []
        for level in ("0.99", "0.999", "1"):
            q = e.get(f"queries@{level}")
            cells.append("-" if q is None else f"{q} q (${e[f'dollars@{level}']:.4f})")
        best = e.get("best") or {}
        cells.append("-" if not best else f"{100 * best['fidelity']:.2f}%")
        table.add_row(e["attack"], *cells)
    out_console.print(table)
    for path in report["files"]:
        click.echo(path)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--jobs", "n_jobs", type=int, default=None,
              help="Run on this many local processes (joblib).")
@click.option("--dask-local", type=int, default=None,
              help="Start a local Dask cluster of this many workers for the grid.")
@click.option("--scheduler", default=None,
              help="Run on the Dask cluster whose scheduler is at this address "
                   "(tcp://HOST:8786).")
@click.option("--store", type=click.Path(dir_okay=False), default="results.sqlite",
              show_default=True,
              help="SQLite results store: finished jobs are not run again.")
@click.option("--out", type=click.Path(file_okay=False), default="grid-out",
              show_default=True, help="Folder for grid.json and grid.md.")
@click.option("--no-retry-failed", is_flag=True,
              help="Keep the errors of jobs that failed in an earlier run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
def grid(config: str, n_jobs: int | None, dask_local: int | None, scheduler: str | None,
         store: str, out: str, no_retry_failed: bool, as_json: bool) -> None:
    """Run every job of a grid CONFIG (.toml or .json) that the results store lacks.

    Each (data set, model, attack, budget, seed, defence) cell is a job; a failed job
    is recorded with its error and the others go on. See docs/grids.md.
    """
    from stealml.experiments.executors import make_executor
    from stealml.experiments.grid import load_grid, run_grid, write_summary
    from stealml.experiments.store import ResultStore

    spec = load_grid(config)
    executor = make_executor(jobs=n_jobs, dask_local=dask_local, scheduler=scheduler)
    with ResultStore(store) as results:
        run = run_grid(spec.jobs, results, executor, name=spec.name,
                       retry_failed=not no_retry_failed, progress=not as_json and None)
    paths = write_summary(run, out)
    if as_json:
        click.echo(json.dumps({**run.summary(), "files": [str(p) for p in paths]}))
        return
    s = run.summary()
    click.echo(f"{s['jobs']} jobs: {s['ran']} run, {s['reused']} reused from {store}, "
               f"{s['failed']} failed ({s['seconds']:.1f} s)")
    for o in run.failed[:10]:
        click.echo(f"  failed {o.config}: {(o.error or '').splitlines()[0]}", err=True)
    for path in paths:
        click.echo(str(path))


@main.command()
@click.argument("models", nargs=-1)
@click.option("--config", type=click.Path(dir_okay=False, exists=True), default=None,
              help="service.toml with models, policies and API keys (see docs/server.md).")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port [default: 8000].")
@click.option("--api-key", "api_keys", multiple=True,
              help="NAME:KEY[:QUOTA]; repeat for several. Without any, no key is needed.")
@click.option("--log", type=click.Path(dir_okay=False), default=None,
              help="SQLite log of every answered prediction, per key.")
@click.option("--output", type=click.Choice(["probabilities", "labels", "top-k"]),
              default=None, help="What answers reveal [default: probabilities].")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="With --output top-k.")
@click.option("--rounding", type=click.IntRange(0, 16), default=None,
              help="Round probabilities to this many decimals (BigML: 5).")
@click.option("--significant-digits", type=click.IntRange(1, 17), default=None,
              help="Keep this many significant digits (Amazon: 16).")
@click.option("--incomplete", type=click.Choice(["reject", "zeros", "native"]), default=None,
              help="Omitted features: refused, encoded as 0 (Amazon), or the model's own "
                   "way (BigML trees) [default: reject].")
@click.option("--price", type=float, default=None, help="Dollars per prediction.")
@_defence_options
@click.option("--ood-reference", type=click.Path(dir_okay=False, exists=True), default=None,
              help="--monitor ood: .npy of the owner's data in the model space.")
@click.option("--space", type=click.Path(dir_okay=False, exists=True), default=None,
              help="FeatureSpace JSON for model files that carry none (ONNX).")
def serve(models: tuple[str, ...], config: str | None, host: str | None, port: int | None,
          api_keys: tuple[str, ...], log: str | None, output: str | None, top_k: int | None,
          rounding: int | None, significant_digits: int | None, incomplete: str | None,
          price: float | None, noise: float | None, noise_seed: int,
          reverse_sigmoid: tuple[float, float] | None, monitors: tuple[str, ...],
          on_flag: str, prada_delta: float, prada_calibration: str | None,
          ood_reference: str | None, space: str | None) -> None:
    """Serve MODELS (PATH or NAME=PATH, skops or ONNX) behind a prediction API.

    The policy options apply to the MODELS given here; models in --config have their own.
    """
    from stealml.server import load_settings
    from stealml.server import serve as run_service
    from stealml.server.settings import key_from_arg, model_from_arg

    policy: dict[str, Any] = {
        "output": output, "top_k": top_k, "rounding": rounding, "price": price,
        "significant_digits": significant_digits, "incomplete": incomplete,
        "space": space, "noise": noise, "noise_seed": noise_seed if noise else None,
        "reverse_sigmoid": reverse_sigmoid}
    if monitors:
        policy["monitor"] = {"detectors": list(monitors), "response": on_flag,
                             "prada_delta": prada_delta, "ood_reference": ood_reference,
                             "prada_calibration": prada_calibration}
    elif prada_calibration is not None:
        raise ConfigurationError("--prada-calibration needs --monitor prada")
    settings = load_settings(config, host=host, port=port, log=log,
                             models=[model_from_arg(m, **policy) for m in models],
                             keys=[key_from_arg(k) for k in api_keys])
    if not settings.models:
        raise ConfigurationError("nothing to serve: give model files or --config")
    run_service(settings, announce=lambda line: click.echo(line, err=True))


@main.command("calibrate-prada")
@click.argument("target", type=click.Path(dir_okay=False, exists=True))
@click.option("--data", default=None, help="The owner's rows: this data set's training split.")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The owner's rows: a .npy in the model space.")
@click.option("--orders", type=click.IntRange(min=1), default=50, show_default=True,
              help="Random orders of the rows (and 20x as many of 200 rows).")
@click.option("--seed", default=0, show_default=True, help="Seed of the orders (and split).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the calibration (.json) for serve/extract "
                   "--prada-calibration.")
@click.option("--label-test/--no-label-test", default=True, show_default=True,
              help="Also test each client's mix of predicted classes against the owner's "
                   "rows' (off where honest clients' mix of cases differs from them).")
@click.option("--label-level", type=float, default=LABEL_LEVEL, show_default=True,
              help="The label test's false-positive rate per honest client, from its "
                   "sampling model (10/level simulated orders: lower costs more time).")
@click.option("--scale-test/--no-scale-test", default=True, show_default=True,
              help="Also test the mean of each client's distances against honest clients' "
                   "(off where honest clients' rows spread wider than the owner's).")
@click.option("--spread-test/--no-spread-test", default=True, show_default=True,
              help="Also test the mean distance between every pair of each client's queries "
                   "against honest clients' (off where they spread wider than the owner's).")
@click.option("--likelihood-test/--no-likelihood-test", default=True, show_default=True,
              help="Also test how likely each client's queries are under the owner's rows, "
                   "class by class (off where honest clients' rows differ from them).")
@click.option("--grid-test/--no-grid-test", default=True, show_default=True,
              help="Also flag a client after 3 queries off the lattice the owner's rows lie "
                   "on (integer scores, codes; off where honest rows may be finer).")
@click.option("--trusted", is_flag=True, help="Load types outside scikit-learn and pickles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def calibrate_prada(target: str, data: str | None, reference: str | None, orders: int,
                    seed: int, out: str, label_test: bool, label_level: float,
                    scale_test: bool, spread_test: bool, likelihood_test: bool,
                    grid_test: bool, trusted: bool, as_json: bool) -> None:
    """Calibrate TARGET's PRADA detector: a threshold per number of distances for each of
    its tests (Shapiro-Wilk W of all and of recent distances, repeated distances, the
    class mix, the mean distance, the mean distance between queries, the queries'
    likelihood under the owner's rows, queries off the owner's lattice), from the owner's
    natural rows sent in many random orders (docs/defences.md)."""
    from stealml.experiments.calibration import calibrate_target

    if not out.endswith(".json"):
        raise ConfigurationError(f"--out is a .json file, not {out}")
    with _spinner("calibrating PRADA", enabled=not as_json):
        _, summary = calibrate_target(target, data=data, reference=reference, out=out,
                                      orders=orders, seed=seed, trusted=trusted,
                                      label_test=label_test, label_level=label_level,
                                      scale_test=scale_test, spread_test=spread_test,
                                      likelihood_test=likelihood_test, grid_test=grid_test)
    if as_json:
        click.echo(json.dumps({**summary, "out": out}))
        return
    table = Table("distances n", "flag when W <", title=f"PRADA calibrated on "
                  f"{summary['rows']} rows ({summary['source']}), saved to {out}")
    for n, t in summary["threshold_at"].items():
        table.add_row(str(n), f"{t:.4f}")
    table.add_row(f"> {summary['thresholds_to']}", f"{summary['delta']:.4f}")
    out_console.print(table)
    if summary["label_shares"]:
        shares = ", ".join(f"{c} {p:.1%}" for c, p in summary["label_shares"].items())
        out_console.print(f"label test: a client's class mix is compared with the owner's "
                          f"({shares})")
    if summary["mean_distance_at"]:
        bounds = ", ".join(f"{v:.3g} at n = {n}" for n, v in summary["mean_distance_at"].items())
        out_console.print(f"scale test: flag when the mean distance is above {bounds}")
    if summary["pair_distance_at"]:
        bounds = ", ".join(f"{v:.3g} at n = {n}" for n, v in summary["pair_distance_at"].items())
        out_console.print(f"spread test: flag when the mean distance between queries is above "
                          f"{bounds}")
    if summary["likelihood_at"]:
        bounds = ", ".join(f"{v:.3g} at n = {n}" for n, v in summary["likelihood_at"].items())
        out_console.print(f"likelihood test: flag when the queries' mean negative "
                          f"log-likelihood under the owner's rows is above {bounds}")
    if summary["grid_features"]:
        out_console.print(f"grid test: flag after {summary['grid_flag']} queries off the "
                          f"lattice of {summary['grid_features']} features")


@contextmanager
def _spinner(text: str, enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with err_console.status(text):
        yield


@contextmanager
def _query_progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    columns = (TextColumn("queries"), BarColumn(), MofNCompleteColumn(),
               TextColumn("${task.fields[cost]:.4f}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("queries", total=None, cost=0.0)

        def update(ledger: Ledger) -> None:
            bar.update(task, completed=ledger.queries, total=ledger.budget, cost=ledger.cost)

        yield update

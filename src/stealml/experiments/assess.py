"""``stealml assess``: how cheaply can *this* deployed model be stolen, and what stops it?

For one model (behind a URL, or in a file served locally), :func:`assess`

1. probes the API with a few paid queries: does it reveal probabilities, labels only,
   the top k? to how many decimals does it round? does it accept incomplete inputs?
2. runs every attack of :data:`stealml.attacks.ATTACKS` whose ``requires`` the API meets
   (and, with the model at hand, whose ``supports`` accepts it) at increasing budgets,
   up to what ``budget_dollars`` buys, and measures each stolen model's fidelity with
   evaluation queries bought apart (never counted in the attack's queries);
3. with the model file, replays each attack at its best budget against every defence of
   :data:`stealml.experiments.defence_targets.DEFENCES` and measures what the defence
   costs honest clients;
4. writes ``assessment.md``, a one-page ``assessment.html`` (plot embedded) and
   ``assessment.json``.

References: Tramèr et al., USENIX Security 2016, sections 4-7.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stealml.attacks import ATTACKS
from stealml.attacks.base import Attack
from stealml.exceptions import ConfigurationError, StealmlError
from stealml.ledger import Ledger
from stealml.oracles.base import BaseOracle

__all__ = ["LEVELS", "ApiProfile", "AssessConfig", "assess", "probe"]

LEVELS = (0.99, 0.999, 1.0)
ALPHAS = (1, 3, 10, 30, 100)  # budgets: alpha × the attack's unknowns, then the most
PROBE_ROWS = 20


@dataclass
class AssessConfig:
    """What ``stealml assess`` was asked (see the command's help)."""

    target: str | None = None
    url: str | None = None
    model: str | None = None
    api_key: str | None = None
    protocol: str = "stealml"
    space: str | None = None
    data: str | None = None
    trusted: bool = False
    output: str = "probabilities"
    rounding: int | None = None
    budget_dollars: float = 1.0
    price: float | None = None
    max_queries: int = 20_000
    eval_queries: int = 2_000
    model_class: str | None = None
    attacks: list[str] | None = None
    defences: bool = True
    all_defences: bool = False
    seed: int = 0
    out: str = "assessment"

    def check(self) -> None:
        if (self.target is None) == (self.url is None):
            raise ConfigurationError("give either --target FILE or --url URL")
        if not self.budget_dollars >= 0:
            raise ConfigurationError(f"--budget-dollars must be >= 0, not "
                                     f"{self.budget_dollars}")
        if self.price is not None and not self.price >= 0:
            raise ConfigurationError(f"--price must be >= 0, not {self.price}")
        if self.max_queries < 1 or self.eval_queries < 1:
            raise ConfigurationError("--max-queries and --eval-queries must be at least 1")
        unknown = [a for a in self.attacks or [] if a not in ATTACKS]
        if unknown:
            raise ConfigurationError(f"unknown attack {unknown[0]!r}; choose from: "
                                     f"{', '.join(sorted(ATTACKS))}")


@dataclass
class ApiProfile:
    """What the probe learned about the API."""

    features: int
    encoded_columns: int
    classes: list[str] | None
    reveals: list[str]
    output: str
    top_k: int | None
    decimals: int | None
    incomplete_accepted: bool
    price: float
    probe_queries: int
    probe_cost: float


@dataclass
class _Target:
    """The door to the target, and the model itself when we hold it."""

    make_oracle: Any  # Ledger -> BaseOracle
    model: Any | None
    served: Any | None
    meta: dict[str, Any] = field(default_factory=dict)


def _open(config: AssessConfig) -> _Target:
    if config.url is not None:
        from stealml.experiments.remote import remote_oracle
        from stealml.experiments.runner import ExtractionConfig

        ec = ExtractionConfig(target=config.url, attack="-", model=config.model,
                              api_key=config.api_key, space=config.space,
                              protocol=config.protocol)  # type: ignore[arg-type]
        remote_oracle(ec, Ledger())  # fails here, once, if the URL does not answer
        return _Target(lambda ledger: remote_oracle(ec, ledger), None, None)
    from stealml.experiments.runner import target_space
    from stealml.modelio import load_model
    from stealml.models.tree_service import TreeService, serves_as_tree
    from stealml.oracles.local import LocalOracle
    from stealml.policies import ApiPolicy

    loaded = load_model(config.target or "", trusted=config.trusted)
    space = target_space(loaded, config.space)
    tree = serves_as_tree(loaded.model)
    served = TreeService(loaded.model, space) if tree else loaded.model
    policy = ApiPolicy(output=config.output, rounding=config.rounding,  # type: ignore[arg-type]
                       price=0.0001 if config.price is None else config.price,
                       incomplete="native" if tree else "reject")
    return _Target(lambda ledger: LocalOracle(served, space, policy, ledger=ledger,
                                              digest=loaded.digest),
                   loaded.model, served, dict(loaded.meta))


def _decimals(values: np.ndarray) -> int | None:
    """Fewest decimals that reproduce every value (None: full precision)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    for d in range(11):  # on the grid of d decimals, far closer than its spacing
        if np.all(np.abs(values - np.round(values, d)) <= 10.0 ** -(d + 3)):
            return d
    return None


def probe(oracle: BaseOracle, seed: int = 0) -> ApiProfile:
    """Learn what ``oracle``'s API reveals from ``PROBE_ROWS`` + 1 paid queries."""
    space = oracle.space
    X = space.sample_encoded(PROBE_ROWS, np.random.default_rng([seed, 2]))
    answers = oracle.query(X)
    p = answers.probabilities
    top_k = None
    if p is None:
        output = "values" if answers.values is not None else "labels"
    elif np.isnan(p).any():
        output, top_k = "top-k", int(np.max(np.sum(~np.isnan(p), axis=1)))
    else:
        output = "probabilities"
    shown = p if p is not None else answers.values
    decimals = None if shown is None else _decimals(np.asarray(shown, dtype=float).ravel())
    row = X[:1].copy()
    row[0, space.columns(0)] = np.nan
    try:
        oracle.query(row)
        incomplete = True
    except StealmlError:
        incomplete = False
    classes = oracle.classes
    return ApiProfile(features=space.n_features, encoded_columns=space.n_encoded,
                      classes=None if classes is None else [str(c) for c in classes],
                      reveals=sorted(oracle.reveals), output=output, top_k=top_k,
                      decimals=decimals, incomplete_accepted=incomplete,
                      price=oracle.policy.price, probe_queries=oracle.ledger.queries,
                      probe_cost=oracle.ledger.cost)


def _make_attack(name: str, config: AssessConfig, model: Any, reveals: frozenset[str],
                 seed: int, budget: int | None = None) -> Attack:
    from stealml.experiments.runner import describe_target

    cls = ATTACKS[name]
    kwargs: dict[str, Any] = {"random_state": seed}
    if cls.requires == frozenset({"labels"}) and "probabilities" in reveals:
        kwargs["ignore_probabilities"] = True  # what would it take with labels alone?
    attack = cls(**kwargs)
    if budget is not None and hasattr(attack, "n_queries"):
        attack.n_queries = budget  # more labels, or more equations than unknowns
    if model is not None:
        describe_target(attack, model, config.model_class)
    elif config.model_class is not None and hasattr(attack, "model_class"):
        attack.model_class = config.model_class
    return attack


def _applicable(config: AssessConfig, reveals: frozenset[str],
                model: Any | None) -> tuple[list[str], dict[str, str]]:
    names = config.attacks or list(ATTACKS)
    run, skipped = [], {}
    for name in names:
        cls = ATTACKS[name]
        missing = cls.requires - reveals
        if missing:
            skipped[name] = f"the API does not reveal {', '.join(sorted(missing))}"
        elif "values" in reveals and cls.classes_only:
            skipped[name] = "learns class labels; the API answers regression values"
        elif model is not None and not cls.supports(model):
            skipped[name] = f"does not apply to a {type(model).__name__}"
        else:
            run.append(name)
    return run, skipped


def _ladder(attack: Attack, n_columns: int, n_classes: int | None, most: int) -> list[int]:
    try:
        k = attack.n_unknowns(n_columns, n_classes)
    except StealmlError:
        k = n_columns + 1
    budgets = {max(1, math.ceil(a * k)) for a in ALPHAS} | {most}
    return sorted(b for b in budgets if b <= most)


def _fidelity(oracle: BaseOracle, stolen: Any, X_unif: np.ndarray,
              X_test: np.ndarray | None) -> dict[str, float | None]:
    from stealml.experiments.remote import remote_fidelity

    fid = remote_fidelity(oracle, stolen, X_unif, X_test)
    if "agree_unif" in fid:  # a regressor: the share of its values reproduced
        return {"fidelity": float(fid["agree_unif"] or 0.0), "fidelity_test": fid["agree_test"]}
    return {"fidelity": 1 - float(fid["r_unif"] or 0.0),
            "fidelity_test": None if fid["r_test"] is None else 1 - float(fid["r_test"])}


def _plan(attack: Attack, n_columns: int, n_classes: int | None, most: int,
          decimals: int | None) -> list[int | None]:
    """The budgets an attack is run at, in order. An attack that spends whatever it is
    given (retraining) climbs the whole ladder; one that stops when it is done runs first
    with the largest budget and no target count (it takes as few queries as it needs) and
    climbs the rest of the ladder only if it can use more queries (``n_queries``) and did
    not reach 100%. None stands for that first run."""
    ladder: list[int | None] = list(_ladder(attack, n_columns, n_classes, most))
    return ladder if _fills(attack, decimals) else [None]


def _fills(attack: Attack, decimals: int | None) -> bool:
    """Whether the attack spends whatever budget it gets: retraining always, equation
    solving against rounded answers (least squares over as many equations as it buys)."""
    return bool(getattr(type(attack), "fills_budget", False)) or (
        decimals is not None and hasattr(attack, "n_queries"))


def _run_attack(name: str, config: AssessConfig, target: _Target, profile: ApiProfile,
                most: int, evaluation: BaseOracle, X_unif: np.ndarray,
                X_test: np.ndarray | None) -> dict[str, Any]:
    reveals = frozenset(profile.reveals)
    n_classes = None if profile.classes is None else len(profile.classes)
    first = _make_attack(name, config, target.model, reveals, config.seed)
    points: list[dict[str, Any]] = []
    entry: dict[str, Any] = {"attack": name, "points": points, "error": None, "spent": 0.0}
    plan = _plan(first, profile.encoded_columns, n_classes, most, profile.decimals)
    while plan:
        count = plan.pop(0)
        # later runs of an attack that stops by itself keep a tenth for its own searches
        asked = count if count is None or _fills(first, profile.decimals) else (
            max(1, int(0.9 * count)))
        attack = _make_attack(name, config, target.model, reveals, config.seed, asked)
        budget = most if count is None else count
        ledger = Ledger(budget=budget)
        oracle = target.make_oracle(ledger)
        try:
            result = attack.run(oracle)
        except (StealmlError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            break
        finally:
            ledger.close()
            entry["spent"] += ledger.cost
        point: dict[str, Any] = {"budget": budget, "queries": result.queries,
                                 "dollars": result.queries * profile.price,
                                 "complete": result.complete, "seconds": result.seconds,
                                 **_fidelity(evaluation, result.model, X_unif, X_test)}
        points.append(point)
        if point["fidelity"] >= 1.0:
            break
        if count is None and hasattr(attack, "n_queries"):  # more equations may help
            plan = [b for b in _ladder(first, profile.encoded_columns, n_classes, most)
                    if int(0.9 * b) > result.queries]
    points.sort(key=lambda p: p["queries"])
    for level in LEVELS:
        hit = next((p for p in points if p["fidelity"] >= level - 1e-12), None)
        entry[f"queries@{level:g}"] = None if hit is None else hit["queries"]
        entry[f"dollars@{level:g}"] = None if hit is None else hit["dollars"]
    best = max(points, key=lambda p: (p["fidelity"], -p["queries"]), default=None)
    entry["best"] = best
    return entry


def assess(config: AssessConfig, announce: Any = None) -> dict[str, Any]:
    """Probe, attack and (with the model) defend one target; write the report files.

    Returns the report as a JSON-able dict (also written to ``out/assessment.json``).
    """
    config.check()
    say = announce or (lambda line: None)
    start = time.perf_counter()
    target = _open(config)
    probe_oracle = target.make_oracle(Ledger())
    profile = probe(probe_oracle, config.seed)
    if config.price is not None:
        profile.price = config.price
    most = config.max_queries
    if profile.price > 0:
        most = min(most, math.floor(config.budget_dollars / profile.price + 1e-9))
    if most < 1:
        raise ConfigurationError(f"${config.budget_dollars:g} buys no query at "
                                 f"${profile.price:g} each")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = target.make_oracle(Ledger())
    space = evaluation.space
    X_unif = space.sample_encoded(config.eval_queries, np.random.default_rng([config.seed, 1]))
    X_test, y_test = _test_split(config, target, space.n_encoded)
    names, skipped = _applicable(config, frozenset(profile.reveals), target.model)
    attacks = []
    for name in names:
        say(f"attacking with {name} ...")
        attacks.append(_run_attack(name, config, target, profile, most, evaluation,
                                   X_unif, X_test))
    defences: dict[str, Any] | None = None
    if config.defences and target.model is not None:
        from stealml.experiments.assess_defences import evaluate_defences

        say("replaying the attacks against each defence ...")
        defences = evaluate_defences(target.model, space, attacks, config, X_unif,
                                     X_test, y_test, target.meta)
    report = {
        "target": config.url or config.target, "api": asdict(profile),
        "budget_dollars": config.budget_dollars, "max_queries_per_attack": most,
        "eval_queries": evaluation.ledger.queries, "eval_cost": evaluation.ledger.cost,
        "spent": profile.probe_cost + evaluation.ledger.cost + sum(a["spent"]
                                                                   for a in attacks),
        "attacks": attacks, "skipped": skipped, "defences": defences,
        "seconds": time.perf_counter() - start,
        "config": {**asdict(config), "api_key": None if config.api_key is None else "***"},
    }
    from stealml.experiments.assess_report import write_assessment

    report["files"] = [str(p) for p in write_assessment(report, out)]
    return report


def _test_split(config: AssessConfig, target: _Target,
                n_columns: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The data set's test split (``--data``, or the one the model file names)."""
    from stealml.datasets import DATASETS
    from stealml.datasets import load as load_dataset
    from stealml.exceptions import FeatureCountError

    data = config.data or target.meta.get("data")
    if data is None or data not in DATASETS:
        return None, None
    ds = load_dataset(str(data), random_state=int(target.meta.get("seed", config.seed)))
    if ds.X_test.shape[1] != n_columns:
        if config.data is None:
            return None, None
        raise FeatureCountError(f"data set {data} has {ds.X_test.shape[1]} features, but "
                                f"the API's space has {n_columns}")
    return ds.X_test, ds.y_test

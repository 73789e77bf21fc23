"""One extraction, from a target file to a report: what ``stealml extract`` runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import RegressorMixin, is_regressor

from stealml.attacks import get_attack
from stealml.attacks.base import Attack, ExtractionResult
from stealml.attacks.params import check_attack_params
from stealml.datasets import load as load_dataset
from stealml.defences import Monitor, OutOfDistribution, Prada, Response, calibrate_prada
from stealml.defences.prada import prada_from_file
from stealml.exceptions import ConfigurationError, FeatureCountError, UnsupportedModelError
from stealml.ledger import Ledger, Progress
from stealml.metrics import R_UNIF_POINTS, fidelity
from stealml.modelio import LoadedModel, load_model, save_model
from stealml.models.ensemble_service import EnsembleService, serves_as_ensemble
from stealml.models.tree_service import TreeService, serves_as_tree
from stealml.oracles.local import LocalOracle
from stealml.policies import ApiPolicy, Output
from stealml.space import FeatureSpace

__all__ = ["ExtractionConfig", "attack_budget", "make_attack", "run_extraction", "target_space"]


@dataclass
class ExtractionConfig:
    """Everything that defines one extraction run (recorded with its results)."""

    target: str
    attack: str
    space: str | None = None
    budget: int | None = None
    alpha: float | None = None
    output: Output = "probabilities"
    rounding: int | None = None
    price: float = 0.0
    seed: int = 0
    log: str | None = None
    out: str | None = None
    data: str | None = None
    trusted: bool = False
    batch_size: int | None = None
    protocol: Literal["stealml", "v2"] | None = None  # set: ``target`` is a service's URL
    model: str | None = None
    api_key: str | None = None
    eval_queries: int = R_UNIF_POINTS
    model_class: str | None = None
    top_k: int | None = None
    noise: float | None = None
    noise_seed: int = 0
    reverse_sigmoid: tuple[float, float] | None = None
    monitors: tuple[str, ...] = ()  # "prada", "ood": the target's owner watches the attacker
    on_flag: Response = "block"
    prada_delta: float = 0.9
    prada_calibration: str | None = None  # .json (calibrate-prada) or .npy of owner's rows
    prada_calibrate: bool = False  # calibrate PRADA per n on --data's training split
    attack_params: tuple[tuple[str, Any], ...] = ()  # --param KEY=VALUE, for the constructor


def make_attack(config: ExtractionConfig) -> Attack:
    """The configured attack: ``config.attack_params`` checked against its constructor
    (a :class:`ConfigurationError` before any query is paid)."""
    cls = get_attack(config.attack)
    params = check_attack_params(cls, dict(config.attack_params))
    return cls(random_state=config.seed, batch_size=config.batch_size,  # type: ignore[call-arg]
               **params)


def target_space(loaded: LoadedModel, space_path: str | None) -> FeatureSpace:
    """The space given on the command line, else the file's, else continuous [-1, 1]."""
    if space_path is not None:
        return FeatureSpace.load(space_path)
    if loaded.space is not None:
        return loaded.space
    n = getattr(loaded.model, "n_features_in_", None)
    if n is None:
        raise FeatureCountError(f"{loaded.path} does not say how many features the model "
                                "takes; give --space SPACE.json")
    return FeatureSpace.continuous(int(n))


def describe_target(attack: Any, model: Any, model_class: str | None) -> None:
    """Tell an equation-solving or functionally-equivalent attack the target's model
    class and architecture, as an API's documentation would (the paper assumes the
    attacker knows them)."""
    from sklearn.neural_network import MLPClassifier

    from stealml.attacks._relu_model import relu_architecture
    from stealml.attacks.equations import EquationSolving, model_class_of
    from stealml.attacks.functional import FunctionallyEquivalent
    from stealml.models.kernel_logreg import KernelLogisticRegression

    if isinstance(attack, FunctionallyEquivalent) and attack.hidden_layer_sizes is None:
        attack.hidden_layer_sizes = relu_architecture(model)
    if not isinstance(attack, EquationSolving):
        return
    attack.model_class = model_class or model_class_of(model)
    if isinstance(model, MLPClassifier):
        attack.hidden_units = int(np.ravel(model.hidden_layer_sizes)[0])
        attack.activation = str(model.activation)
    if isinstance(model, KernelLogisticRegression) and hasattr(model, "representers_"):
        attack.gamma = float(model.gamma)
        attack.n_representers = len(model.representers_)


def attack_budget(config: ExtractionConfig, attack: Any, space: FeatureSpace,
                  n_classes: int | None) -> int | None:
    """``--budget`` as given, or ``--alpha`` times the model class's unknowns."""
    if config.budget is not None and config.alpha is not None:
        raise ConfigurationError("give --budget or --alpha, not both")
    if config.alpha is not None:
        if not config.alpha > 0:
            raise ConfigurationError(f"alpha must be positive, not {config.alpha}")
        return max(1, math.ceil(config.alpha * attack.n_unknowns(space.n_encoded, n_classes)))
    return config.budget


def run_extraction(config: ExtractionConfig,
                   progress: Progress | None = None) -> tuple[ExtractionResult, dict[str, Any]]:
    """Load the target, run the attack through a LocalOracle, measure, save.

    Returns the attack's result and a JSON-able report. With ``config.protocol`` set,
    the target is a service's URL: see :func:`stealml.experiments.remote.run_remote`.
    """
    if config.protocol is not None:
        from stealml.experiments.remote import run_remote

        return run_remote(config, progress)
    attack = make_attack(config)
    loaded = load_model(config.target, trusted=config.trusted)
    space = target_space(loaded, config.space)
    if not type(attack).supports(loaded.model):
        raise UnsupportedModelError(
            f"attack {config.attack!r} does not apply to a {type(loaded.model).__name__} "
            "target")
    classes = getattr(loaded.model, "classes_", None)
    describe_target(attack, loaded.model, config.model_class)
    budget = attack_budget(config, attack, space, None if classes is None else len(classes))
    served = loaded.model
    if serves_as_tree(loaded.model):
        served = TreeService(loaded.model, space)
    elif serves_as_ensemble(loaded.model):  # BigML's ensembles: each tree's answer too
        served = EnsembleService(loaded.model, space, per_tree=True)
    policy = ApiPolicy(output=config.output, top_k=config.top_k, rounding=config.rounding,
                       price=config.price, noise=config.noise, noise_seed=config.noise_seed,
                       reverse_sigmoid=config.reverse_sigmoid,
                       incomplete="native" if served is not loaded.model else "reject")
    ds = None
    if config.data is not None:
        ds = load_dataset(config.data, random_state=config.seed)
        if ds.X_test.shape[1] != space.n_encoded:
            raise FeatureCountError(f"data set {config.data} has {ds.X_test.shape[1]} "
                                    f"features, but the space has {space.n_encoded}")
    monitor = _monitor(config, ds, space.n_encoded,
                       None if is_regressor(loaded.model) else loaded.model.predict)
    ledger = Ledger(budget=budget, log=config.log, progress=progress)
    oracle = LocalOracle(served, space=space, policy=policy, ledger=ledger,
                         digest=loaded.digest, monitor=monitor)
    try:
        result = attack.run(oracle)
    finally:
        ledger.close()
    X_test = None if ds is None else ds.X_test
    fid = fidelity(loaded.model, result.model, space, X_test, random_state=config.seed,
                   regression=isinstance(result.model, RegressorMixin))
    if config.out is not None:
        save_model(Path(config.out), result.model, space,
                   {"attack": config.attack, "target": config.target, **loaded.meta,
                    "stolen": True})
    report = {
        "attack": config.attack, "target": config.target, "queries": result.queries,
        "replayed": result.replayed, "cost": result.cost, "seconds": result.seconds,
        "fidelity": fid, "budget": budget, "complete": result.complete,
        "info": result.info, "config": asdict(config),
    }
    if monitor is not None:
        report["detection"] = monitor.summary(oracle.client)
    return result, _jsonable(report)


def _monitor(config: ExtractionConfig, ds: Any, n_columns: int,
             labels_of: Callable[[np.ndarray], Any] | None) -> Monitor | None:
    """The target owner's extraction monitor (``--monitor``), watching the attacker;
    ``labels_of`` gives the target's labels (None for a regressor: PRADA keeps one group
    of queries)."""
    if config.prada_calibrate and config.prada_calibration is not None:
        raise ConfigurationError("give --prada-calibrate or --prada-calibration, not both")
    if (config.prada_calibrate or config.prada_calibration) and "prada" not in config.monitors:
        raise ConfigurationError("calibrating PRADA needs --monitor prada")
    if not config.monitors:
        return None
    detectors: list[Any] = []
    for name in dict.fromkeys(config.monitors):
        if name == "prada" and config.prada_calibration is not None:
            detectors.append(prada_from_file(config.prada_calibration, n_columns, labels_of))
        elif name == "prada" and config.prada_calibrate:
            if ds is None:
                raise ConfigurationError("--prada-calibrate needs the owner's data: give "
                                         "--data (its training split is the reference)")
            detectors.append(calibrate_prada(
                ds.X_train, None if labels_of is None else labels_of(ds.X_train),
                random_state=config.seed))
        elif name == "prada":
            detectors.append(Prada(delta=config.prada_delta, by_class=labels_of is not None))
        elif name == "ood":
            if ds is None:
                raise ConfigurationError("--monitor ood needs the owner's data: give --data "
                                         "(its training split is the reference)")
            detectors.append(OutOfDistribution(ds.X_train, random_state=config.seed))
        else:
            raise ConfigurationError(f"unknown monitor {name!r}; choose prada or ood")
    return Monitor(detectors, response=config.on_flag)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj

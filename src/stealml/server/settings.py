"""Typed settings of the prediction service, read from a ``service.toml`` and the CLI.

A ``service.toml`` lists the models, each with the policy an ML service would set, and
the API keys with their quotas::

    host = "127.0.0.1"            # loopback unless told otherwise
    port = 8000
    log = "predictions.sqlite"    # every answered prediction, per key
    max_batch = 1000

    [[keys]]
    name = "alice"
    key = "sk-alice"
    quota = 10000                 # predictions; omit for no quota

    [[models]]
    name = "adult"
    path = "adult.skops"          # skops (trusted types only) or ONNX; never a pickle
    output = "probabilities"      # or "labels", "top-k" (with top_k)
    significant_digits = 16       # Amazon; or rounding = 5 (BigML)
    incomplete = "zeros"          # Amazon; "native" for BigML; "reject"
    price = 0.0001                # dollars per prediction
    # noise = 0.01                # Gaussian noise on probabilities (std), noise_seed = 0
    # reverse_sigmoid = [0.7, 0.4]  # Lee et al.'s (beta, gamma)

    [models.monitor]              # extraction detection per API key (docs/defences.md)
    detectors = ["prada", "ood"]  # PRADA; out-of-distribution rate (needs ood_reference)
    response = "block"            # or "labels", "noise" (std: noise = 0.1), "log"
    prada_delta = 0.9             # one threshold; or per-n thresholds calibrated on the
    # prada_calibration = "adult-train.npy"  # owner's rows (.npy, at start-up), or a .json
    #                                        # from `stealml calibrate-prada`
    ood_reference = "adult-train.npy"  # the owner's rows, in the model space
    # space = "space.json"        # FeatureSpace JSON, for a file that carries none (ONNX)

Without any ``[[keys]]`` the service answers everyone (as ``anonymous``). Environment
variables ``STEALML_SERVE_HOST``, ``STEALML_SERVE_PORT``, ... override the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from stealml.exceptions import ConfigurationError
from stealml.policies import ApiPolicy

__all__ = ["ApiKey", "ModelSettings", "MonitorSettings", "ServiceSettings", "key_from_arg",
           "load_settings", "model_from_arg"]


class MonitorSettings(BaseModel):
    """Extraction detection on one model's clients (see ``docs/defences.md``)."""

    model_config = ConfigDict(extra="forbid")

    detectors: list[Literal["prada", "ood"]] = Field(default=["prada"], min_length=1)
    response: Literal["block", "labels", "noise", "log"] = "block"
    noise: float = 0.1
    prada_delta: float = 0.9
    prada_min_samples: int = 100
    prada_calibration: Path | None = None  # .npy of the owner's rows, or calibrate-prada .json
    ood_reference: Path | None = None  # .npy of model-space rows of the owner's data
    ood_quantile: float = 0.99
    ood_alpha: float = 1e-6

    @model_validator(mode="after")
    def _valid(self) -> MonitorSettings:
        from stealml.defences import Monitor, Prada

        Prada(delta=self.prada_delta, min_samples=self.prada_min_samples)
        if self.prada_calibration is not None:
            if "prada" not in self.detectors:
                raise ValueError("prada_calibration is given, but prada is not a detector")
            if self.prada_calibration.suffix == ".json":
                Prada.load(self.prada_calibration)  # a bad file fails when settings load
            elif self.prada_calibration.suffix != ".npy":
                raise ValueError(f"prada_calibration is a .npy of the owner's rows (model "
                                 f"space) or a .json from stealml calibrate-prada, not "
                                 f"{self.prada_calibration}")
            elif not self.prada_calibration.is_file():
                raise ValueError(f"prada_calibration {self.prada_calibration} does not exist")
        Monitor([Prada()], response=self.response, noise=self.noise)
        if "ood" in self.detectors and self.ood_reference is None:
            raise ValueError("the ood detector needs ood_reference, a .npy file of the "
                             "owner's data in the model space")
        if not (0.5 <= self.ood_quantile < 1 and 0 < self.ood_alpha < 1):
            raise ValueError("ood_quantile must be in [0.5, 1) and ood_alpha in (0, 1)")
        return self


class ModelSettings(BaseModel):
    """One served model and the policy of its API."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: Path
    output: Literal["probabilities", "labels", "top-k"] = "probabilities"
    top_k: int | None = None
    rounding: int | None = None
    significant_digits: int | None = None
    incomplete: Literal["reject", "zeros", "native"] = "reject"
    price: float = 0.0
    noise: float | None = None
    noise_seed: int = 0
    reverse_sigmoid: tuple[float, float] | None = None
    extraction: Path | None = None
    space: Path | None = None
    monitor: MonitorSettings | None = None

    @model_validator(mode="after")
    def _valid_policy(self) -> ModelSettings:
        self.policy()  # a bad defence parameter fails when the settings are loaded
        return self

    def policy(self) -> ApiPolicy:
        """The :class:`~stealml.policies.ApiPolicy` these settings describe."""
        return ApiPolicy(output=self.output, top_k=self.top_k, rounding=self.rounding,
                         incomplete=self.incomplete, price=self.price,
                         significant_digits=self.significant_digits, noise=self.noise,
                         noise_seed=self.noise_seed, reverse_sigmoid=self.reverse_sigmoid)


class ApiKey(BaseModel):
    """A client's key, the name the log records it under, and its quota of predictions."""

    model_config = ConfigDict(extra="forbid")

    name: str
    key: str = Field(min_length=8)
    quota: int | None = Field(default=None, ge=0)


class ServiceSettings(BaseSettings):
    """Everything the service is configured with.

    Examples
    --------
    >>> ServiceSettings(models=[]).host
    '127.0.0.1'
    """

    model_config = SettingsConfigDict(env_prefix="STEALML_SERVE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log: Path | None = None
    log_sync: Literal["full", "normal"] = "full"
    max_batch: int = Field(default=1000, ge=1)
    models: list[ModelSettings] = Field(default_factory=list)
    keys: list[ApiKey] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names are not unique: {names}")
        return models

    @field_validator("keys")
    @classmethod
    def _unique_keys(cls, keys: list[ApiKey]) -> list[ApiKey]:
        if len({k.name for k in keys}) != len(keys) or len({k.key for k in keys}) != len(keys):
            raise ValueError("API key names and keys must be unique")
        return keys


def load_settings(config: str | Path | None = None, **overrides: Any) -> ServiceSettings:
    """Settings from a ``service.toml`` (optional), with ``overrides`` on top.

    ``models`` and ``keys`` given as overrides are added to the file's; any other
    override that is not None replaces the file's value. Relative model paths in the file
    are taken from the file's folder.

    Raises
    ------
    ConfigurationError
        The file cannot be read or the settings make no sense.
    """
    data: dict[str, Any] = {}
    if config is not None:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read the service config {path}: {exc}") from exc
        for m in data.get("models", []):
            for key in ("path", "space", "extraction"):
                if isinstance(m, dict) and key in m:
                    m[key] = str(path.parent / m[key])
            mon = m.get("monitor") if isinstance(m, dict) else None
            for key in ("ood_reference", "prada_calibration"):
                if isinstance(mon, dict) and key in mon:
                    mon[key] = str(path.parent / mon[key])
    for key in ("models", "keys"):
        data[key] = list(data.get(key, [])) + list(overrides.pop(key, None) or [])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServiceSettings(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigurationError(f"bad service settings: {problems}") from exc


def model_from_arg(arg: str, **policy: Any) -> dict[str, Any]:
    """``NAME=PATH`` or ``PATH`` (named after the file) -> a model's settings dict.

    Examples
    --------
    >>> model_from_arg("models/adult.skops", price=0.0001)["name"]
    'adult'
    """
    name, sep, path = arg.partition("=")
    if not sep:
        name, path = Path(arg).stem, arg
    return {"name": name, "path": path, **{k: v for k, v in policy.items() if v is not None}}


def key_from_arg(arg: str) -> dict[str, Any]:
    """``NAME:KEY`` or ``NAME:KEY:QUOTA`` -> an API key's settings dict.

    Examples
    --------
    >>> key_from_arg("alice:sk-alice-123:500")
    {'name': 'alice', 'key': 'sk-alice-123', 'quota': 500}
    """
    parts = arg.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigurationError(f"an API key is NAME:KEY or NAME:KEY:QUOTA, not {arg!r}")
    out: dict[str, Any] = {"name": parts[0], "key": parts[1]}
    if len(parts) == 3:
        try:
            out["quota"] = int(parts[2])
        except ValueError:
            raise ConfigurationError(f"quota {parts[2]!r} is not a whole number") from None
    return out

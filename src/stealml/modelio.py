"""Model files: skops (no code runs on load) and ONNX; pickle only when trusted.

A file written by :func:`save_model` holds the model together with its FeatureSpace and
a few facts about it (data set, kind, attack). A user's own skops file holding a bare
estimator loads too. scikit-learn's and stealml's own types are trusted; any other type
in a skops file is refused with its name unless ``trusted=True``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stealml.exceptions import ModelFileError, SpaceDefinitionError, UntrustedTypesError
from stealml.models.onnx import OnnxModel
from stealml.space import FeatureSpace

__all__ = ["TRUSTED_PREFIXES", "LoadedModel", "load_model", "save_model"]

FORMAT = "stealml-model-1"
TRUSTED_PREFIXES = ("sklearn.", "stealml.")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


@dataclass
class LoadedModel:
    """A model read from a file, with its FeatureSpace when the file carries one."""

    model: Any
    space: FeatureSpace | None
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    path: str = ""


def save_model(path: str | Path, model: Any, space: FeatureSpace | None = None,
               meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` (and its space and facts) as a skops file."""
    import skops.io as sio

    payload = {"format": FORMAT, "model": model,
               "space": None if space is None else space.to_json(),
               "meta": json.dumps(meta or {})}
    try:
        sio.dump(payload, Path(path))
    except (TypeError, NotImplementedError) as exc:
        raise ModelFileError(f"cannot save a {type(model).__name__} with skops: "
                             f"{exc}") from exc


def _untrusted(types: list[str]) -> list[str]:
    return sorted(t for t in types if not t.startswith(TRUSTED_PREFIXES))


def _load_skops(path: Path, trusted: bool) -> Any:
    import skops.io as sio

    try:
        types = sio.get_untrusted_types(file=path)
        bad = _untrusted(types)
        if bad and not trusted:
            raise UntrustedTypesError(str(path), bad)
        return sio.load(path, trusted=types)
    except UntrustedTypesError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError,
            ImportError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a readable skops model file: {exc}") from exc


def _load_pickle(path: Path, trusted: bool) -> Any:
    if not trusted:
        raise ModelFileError(
            f"{path} is a pickle/joblib file, which runs code when loaded; re-save it with "
            "skops, or pass --trusted if you trust its source")
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # anything may fail inside an arbitrary pickle
        raise ModelFileError(f"{path} could not be unpickled: {exc}") from exc


def load_model(path: str | Path, trusted: bool = False) -> LoadedModel:
    """Load a target or extracted model from ``.skops``, ``.onnx`` (or, trusted, pickle).

    Raises
    ------
    ModelFileError
        The file is missing, is not a model, or is a pickle and ``trusted`` is False.
    UntrustedTypesError
        The skops file holds types outside scikit-learn and stealml.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"no such model file: {p}")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return LoadedModel(OnnxModel(p), None, {}, digest, str(p))
    if suffix in PICKLE_SUFFIXES:
        obj = _load_pickle(p, trusted)
    elif zipfile.is_zipfile(p):
        obj = _load_skops(p, trusted)
    else:
        raise ModelFileError(f"{p} is not a model file (expected .skops or .onnx; "
                             ".pkl/.joblib only with --trusted)")
    space = None
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        try:
            space = FeatureSpace.from_json(obj["space"]) if obj.get("space") else None
        except SpaceDefinitionError as exc:
            raise ModelFileError(f"{p} carries a broken feature space: {exc}") from exc
        meta = json.loads(obj.get("meta") or "{}")
        obj = obj["model"]
    if not hasattr(obj, "predict"):
        raise ModelFileError(f"{p} holds a {type(obj).__name__}, not a model")
    return LoadedModel(obj, space, meta, digest, str(p))

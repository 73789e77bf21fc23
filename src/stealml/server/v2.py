"""The Open Inference Protocol (KServe V2) routes, for the same models and keys.

``POST /v2/models/{name}/infer`` takes one FP64 tensor of shape ``[n, d]``, where the d
columns are the model's published feature space in its encoded form (one-hot columns,
numerics scaled to [-1, 1]): the model's own input, as MLServer or Triton take it. A model
with server-side feature extraction (quantile bins) gets each row decoded to raw values
first. The answer holds ``predict`` (labels, or a regressor's values) and, where the policy
reveals them in full, ``predict_proba``; ask for one with ``"outputs": [{"name": ...}]``.
Incomplete inputs cannot be sent over V2 (JSON has no NaN): use ``/models/{name}/predict``.

References: KServe Open Inference Protocol, REST (https://kserve.github.io/website/).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Header

from stealml import __version__
from stealml.policies import ApiPolicy
from stealml.server.errors import ApiError
from stealml.server.models import Outcome, ServedModel
from stealml.server.schemas import V2InferenceRequest, V2InferenceResponse
from stealml.server.service import Caller, Service, caller, get_service

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
ServiceDep = Annotated[Service, Depends(get_service)]
CallerDep = Annotated[Caller, Depends(caller)]
NUMERIC = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32",
           "UINT16", "UINT8", "BOOL"}


@router.get("")
def server_metadata() -> dict[str, Any]:
    """The server's name, version and protocol extensions."""
    return {"name": "stealml", "version": __version__, "extensions": []}


@router.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
def ready(service: ServiceDep) -> dict[str, bool]:
    return {"ready": True}


@router.get("/models/{name}/ready")
def model_ready(name: str, service: ServiceDep) -> dict[str, Any]:
    service.model(name)
    return {"name": name, "ready": True}


def _outputs(served: ServedModel) -> list[str]:
    full = served.output == "probabilities"
    return ["predict", "predict_proba"] if full else ["predict"]


@router.get("/models/{name}")
def model_metadata(name: str, service: ServiceDep) -> dict[str, Any]:
    """Inputs and outputs as tensors; stealml's metadata (features, classes, price, ...)
    under ``parameters``."""
    served = service.model(name)
    meta = served.metadata()
    n, c = served.space.n_encoded, len(served.classes)
    shapes = {"predict": [-1], "predict_proba": [-1, c]}
    return {"name": name, "versions": [meta["version"]], "platform": "stealml",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, n]}],
            "outputs": [{"name": o, "datatype": "FP64" if o == "predict_proba" else
                         _label_type(served.classes), "shape": shapes[o]}
                        for o in _outputs(served)],
            "parameters": meta}


@router.post("/models/{name}/infer", response_model=V2InferenceResponse)
def infer(name: str, body: V2InferenceRequest, service: ServiceDep, who: CallerDep,
          idempotency_key: Annotated[str | None, Header(max_length=200)] = None
          ) -> dict[str, Any]:
    """Answer the rows of one ``[n, d]`` tensor."""
    served = service.model(name)
    X = _tensor(body, served.space.n_encoded)
    if len(X) > service.settings.max_batch:
        raise ApiError(422, "batch_too_large", f"a batch of {len(X)} rows exceeds this "
                       f"service's max_batch of {service.settings.max_batch}")
    wanted = [o.name for o in body.outputs] if body.outputs else _outputs(served)
    unknown = sorted(set(wanted) - set(_outputs(served)))
    if unknown:
        raise ApiError(422, "unknown_output", f"model {name!r} has no output "
                       f"{', '.join(unknown)}; it has {', '.join(_outputs(served))}")
    rows = X.tolist()
    request_id = idempotency_key or body.id

    def run(policy: ApiPolicy) -> Outcome:
        if served.extraction.is_identity:
            return served.predict_columns(X, policy)
        return served.predict(served.space.decode(X), policy)

    def respond(out: Outcome) -> dict[str, Any]:
        tensors = []
        for o in wanted:
            if o == "predict":
                tensors.append({"name": o, "shape": [len(rows)], "data": out.labels,
                                "datatype": _label_type(out.labels)})
            elif out.probabilities is not None:  # none for a client flagged to labels
                tensors.append({"name": o, "shape": list(out.probabilities.shape),
                                "datatype": "FP64",
                                "data": out.probabilities.ravel().tolist()})
        return {"model_name": name, "model_version": served.metadata()["version"],
                "id": body.id, "outputs": tensors}

    return service.answer(who, served, request_id, f"v2/{name}", rows, rows, run, respond)


def _tensor(body: V2InferenceRequest, n_columns: int) -> np.ndarray:
    t = body.inputs[0]
    if t.datatype not in NUMERIC:
        raise ApiError(422, "bad_datatype", f"input datatype must be numeric (FP64, ...), "
                       f"not {t.datatype!r}")
    try:
        X = np.asarray(t.data, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "bad_tensor", f"input data is not numeric: {exc}") from None
    shape = list(t.shape)
    if len(shape) != 2 or shape[1] != n_columns or shape[0] < 1 or \
            shape[0] * shape[1] != X.size:
        raise ApiError(422, "bad_shape", f"input must have shape [n, {n_columns}] with "
                       f"n * {n_columns} values; got shape {shape} with {X.size} values")
    if not np.isfinite(X).all():
        raise ApiError(422, "bad_tensor", "input data holds an infinity or NaN")
    return X.reshape(shape)


def _label_type(labels: list[Any]) -> str:
    if any(isinstance(v, str) for v in labels):
        return "BYTES"
    if all(isinstance(v, (bool, int)) for v in labels):
        return "INT64"
    return "FP64"

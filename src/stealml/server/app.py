"""The prediction service: a FastAPI app hosting models the way an ML service does.

Routes (stealml's protocol; the Open Inference Protocol ones are in :mod:`.v2`):

==============================  ===========================================================
``GET /health``                 liveness
``GET /models``                 every model's metadata
``GET /models/{name}``          one model's input features, classes, output, price, ...
``POST /models/{name}/predict`` one input: ``{"input": {"age": 39, "sex": "M"}}``
``POST /models/{name}/batch``   several: ``{"inputs": [{...}, {...}]}``
==============================  ===========================================================

Predictions need an API key when the service has keys (``Authorization: Bearer KEY`` or
``X-API-Key``): 401 without one, 403 for a wrong one (or one an extraction monitor
blocked, code ``extraction_suspected``), 429 past its quota; malformed input
is 422. Each error has a JSON body. A request sent again with the same ``Idempotency-Key``
header is answered from the log and not charged twice.

References: Tramèr et al., USENIX Security 2016, section 2.2 (ML services).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Response

from stealml import __version__
from stealml.server.errors import ApiError, install_error_handlers
from stealml.server.models import ServedModel
from stealml.server.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ModelList,
    ModelMetadata,
    PredictRequest,
    PredictResponse,
)
from stealml.server.service import Caller, Service, caller, get_service
from stealml.server.settings import ServiceSettings
from stealml.server.v2 import router as v2_router

__all__ = ["create_app"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d} for s, d in (
        (401, "no API key"), (403, "wrong API key, or a key the extraction monitor blocked"),
        (404, "no such model"),
        (422, "malformed input"), (429, "past the key's quota"))}

ServiceDep = Annotated[Service, Depends(get_service)]
CallerDep = Annotated[Caller, Depends(caller)]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service for ``settings`` (models are loaded now, through modelio).

    Examples
    --------
    >>> app = create_app(ServiceSettings(models=[]))
    >>> "/models/{name}/predict" in app.openapi()["paths"]
    True
    """
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.log.close()

    app = FastAPI(title="stealml prediction service", version=__version__,
                  description="Models behind an ML-service API (stealml).", lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    _add_routes(app)
    app.include_router(v2_router)
    return app


def _json(body: PredictResponse | BatchResponse) -> Response:
    """A validated response as JSON, sent as it is (FastAPI would validate and encode it
    again, in its thread pool)."""
    return Response(body.model_dump_json(), media_type="application/json")


def _batch_limit(service: Service, n: int) -> None:
    if n > service.settings.max_batch:
        raise ApiError(422, "batch_too_large",
                       f"a batch of {n} inputs exceeds this service's max_batch of "
                       f"{service.settings.max_batch}")


def _predict(service: Service, who: Caller, served: ServedModel, request_id: str | None,
             route: str, inputs: list[dict[str, Any]], single: bool) -> dict[str, Any]:
    def respond(outcome: Any) -> dict[str, Any]:
        records = outcome.records(served.classes)
        body: dict[str, Any] = {"model": served.name,
                                "cost": served.policy.price * len(records),
                                "request_id": request_id}
        if single:
            body["prediction"] = records[0]
        else:
            body["predictions"] = records
        return body

    return service.answer(who, served, request_id, route, inputs, inputs,
                          lambda policy: served.predict(inputs, policy), respond)


def _add_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["service"])
    def health(service: ServiceDep) -> dict[str, Any]:
        """Liveness: the service is up and has its models loaded."""
        return {"status": "ok", "models": len(service.models)}

    @app.get("/models", tags=["models"])
    def list_models(service: ServiceDep) -> ModelList:
        """Every model's metadata, and the most inputs a batch may hold."""
        return ModelList(models=[ModelMetadata(**m.metadata()) for m in service.models.values()],
                         max_batch=service.settings.max_batch)

    @app.get("/models/{name}", tags=["models"], responses={404: _ERRORS[404]})
    def model_metadata(name: str, service: ServiceDep) -> ModelMetadata:
        """A model's input features (names, types, ranges or values), classes, what its
        answers reveal, its incomplete-input semantics and its price per prediction."""
        return ModelMetadata(**service.model(name).metadata())

    @app.post("/models/{name}/predict", tags=["predict"], responses=_ERRORS,
              response_model=PredictResponse)
    def predict(name: str, body: PredictRequest, service: ServiceDep, who: CallerDep,
                idempotency_key: IdempotencyKey = None) -> Response:
        """Answer one input (feature name -> value; an omitted feature is missing)."""
        served = service.model(name)
        out = _predict(service, who, served, idempotency_key, f"predict/{name}",
                       [body.input], single=True)
        return _json(PredictResponse(**out))

    @app.post("/models/{name}/batch", tags=["predict"], responses=_ERRORS,
              response_model=BatchResponse)
    def batch(name: str, body: BatchRequest, service: ServiceDep, who: CallerDep,
              idempotency_key: IdempotencyKey = None) -> Response:
        """Answer several inputs in one request; charged per input."""
        served = service.model(name)
        _batch_limit(service, len(body.inputs))
        out = _predict(service, who, served, idempotency_key, f"batch/{name}",
                       body.inputs, single=False)
        return _json(BatchResponse(**out))

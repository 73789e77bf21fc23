"""Request and response bodies of the service (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchRequest", "BatchResponse", "ErrorBody", "ModelList", "ModelMetadata",
           "PredictRequest", "PredictResponse", "Prediction", "V2InferenceRequest",
           "V2InferenceResponse", "V2Tensor"]

Value = int | float | str | None
Label = int | float | str | bool | None


class PredictRequest(BaseModel):
    """One input: feature name -> value; an omitted feature (or null) is missing."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"example": {"input": {"age": 39, "sex": "M"}}})
    input: dict[str, Value]


class BatchRequest(BaseModel):
    """Several inputs answered in one request (at most the service's ``max_batch``)."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[dict[str, Value]] = Field(min_length=1)


class Prediction(BaseModel):
    label: Label
    probabilities: dict[str, float] | None = Field(
        default=None, description="class -> probability, for the classes the API reveals")
    value: float | None = Field(default=None, description="a regressor's prediction")
    confidence: float | None = Field(
        default=None, description="a tree's confidence (BigML: Wilson lower bound)")
    fields: list[str] | None = Field(default=None,
                                     description="the features a tree's answer used")


class PredictResponse(BaseModel):
    model: str
    prediction: Prediction
    cost: float
    request_id: str | None = None


class BatchResponse(BaseModel):
    model: str
    predictions: list[Prediction]
    cost: float
    request_id: str | None = None


class ModelMetadata(BaseModel):
    """What the service publishes about a model: its input features and its API."""

    name: str
    task: str
    features: list[dict[str, Any]]
    classes: list[Label]
    output: str
    top_k: int | None
    rounding: int | None
    significant_digits: int | None
    incomplete: str
    price: float
    confidence: bool
    version: str


class ModelList(BaseModel):
    models: list[ModelMetadata]
    max_batch: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class V2Tensor(BaseModel):
    """An Open Inference Protocol tensor: name, shape, datatype and (flat) data."""

    name: str
    shape: list[int] = Field(max_length=8)
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class V2RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestOutput] | None = None


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2Tensor]

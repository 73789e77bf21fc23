"""Model types stealml adds: adapters for foreign formats and extracted-model estimators."""

from __future__ import annotations

from stealml.models.dp_logreg import DPLogisticRegression
from stealml.models.ensemble_service import EnsembleService
from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.models.onnx import OnnxModel
from stealml.models.tree import ExtractedTreeClassifier, ExtractedTreeRegressor
from stealml.models.tree_service import TreeService

__all__ = ["DPLogisticRegression", "EnsembleService", "ExtractedTreeClassifier",
           "ExtractedTreeRegressor",
           "KernelLogisticRegression", "OnnxModel", "TreeService"]

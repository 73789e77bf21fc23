"""Model types stealml adds: adapters for foreign formats and extracted-model estimators."""

from __future__ import annotations

from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.models.onnx import OnnxModel

__all__ = ["KernelLogisticRegression", "OnnxModel"]

"""An ONNX model behind the scikit-learn predict / predict_proba interface (onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stealml.exceptions import ModelFileError, OracleUnavailableError

__all__ = ["OnnxModel"]

_LABEL_ATTRS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class OnnxModel:
    """Wrap an ONNX classifier or regressor with one float tensor input.

    Parameters
    ----------
    source : str, Path or bytes
        The ``.onnx`` file or its bytes.

    Classifiers exported by skl2onnx (with or without ZipMap) expose ``classes_``,
    ``predict`` and ``predict_proba``; regressors expose ``predict``.
    """

    def __init__(self, source: str | Path | bytes) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise ModelFileError("onnxruntime is needed to load ONNX models") from exc
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            self._session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"not a loadable ONNX model: {exc}") from exc
        self.model_bytes = data
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"ONNX model has {len(inputs)} inputs; stealml needs one "
                                 "float tensor input")
        self._input = inputs[0].name
        shape = inputs[0].shape
        self.n_features_in_ = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        self._input_type = inputs[0].type
        outputs = self._session.get_outputs()
        self._label_out = outputs[0].name
        self._proba_out = outputs[1].name if len(outputs) > 1 else None
        self.classes_ = self._class_labels(data) if self._proba_out is not None else None

    @property
    def is_classifier(self) -> bool:
        return self._proba_out is not None

    @property
    def _estimator_type(self) -> str:  # scikit-learn < 1.6 reads this ...
        return "classifier" if self.is_classifier else "regressor"

    def __sklearn_tags__(self) -> Any:  # ... and >= 1.6 this (is_classifier, is_regressor)
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self.is_classifier
        return Tags(estimator_type=self._estimator_type, target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags() if classifier else None,
                    regressor_tags=None if classifier else RegressorTags())

    @staticmethod
    def _class_labels(data: bytes) -> np.ndarray | None:
        import onnx

        model = onnx.load_from_string(data)
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.name in _LABEL_ATTRS:
                    values = onnx.helper.get_attribute_value(attr)
                    vals = [v.decode() if isinstance(v, bytes) else v for v in values]
                    return np.array(vals)
        return None

    def _run(self, X: np.ndarray) -> list[Any]:
        dtype = np.float64 if "double" in self._input_type else np.float32
        try:
            return list(self._session.run(None, {self._input: np.asarray(X, dtype=dtype)}))
        except Exception as exc:
            raise OracleUnavailableError(f"the ONNX model failed to answer: {exc}") from exc

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self._run(X)[0])
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._proba_out is None:
            raise AttributeError("this ONNX model gives no probabilities")
        proba = self._run(X)[1]
        if isinstance(proba, list):  # ZipMap: a list of {class: probability}
            keys = list(proba[0].keys()) if proba else []
            if self.classes_ is None:
                self.classes_ = np.array(keys)
            return np.array([[row[k] for k in keys] for row in proba], dtype=float)
        p = np.asarray(proba, dtype=float)
        if self.classes_ is None:
            self.classes_ = np.arange(p.shape[1])
        return p

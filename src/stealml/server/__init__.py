"""The prediction service: models behind an ML-service API, over HTTP.

``create_app(settings)`` builds the FastAPI app; ``serve(settings)`` runs it with uvicorn;
``running(settings)`` runs it in a background thread on loopback (tests, benchmarks, the
paper's online attacks).
"""

from __future__ import annotations

from stealml.server.app import create_app
from stealml.server.extraction import FeatureExtraction
from stealml.server.runner import running, serve
from stealml.server.settings import ApiKey, ModelSettings, ServiceSettings, load_settings

__all__ = ["ApiKey", "FeatureExtraction", "ModelSettings", "ServiceSettings", "create_app",
           "load_settings", "running", "serve"]

"""Seldon's MLServer as a third-party Open Inference Protocol server, on loopback.

MLServer pins an older FastAPI than stealml, so it lives in a virtual environment of its
own (``.venv-mlserver`` by default), made with ``python -m venv`` and pip on first use.
Used by the integration test and the throughput benchmark; nothing here is needed to
serve or attack a model.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stealml.server.runner import stop_process, wait_until_ready

__all__ = ["ensure_venv", "free_port", "serve_sklearn"]

PACKAGES = ("mlserver", "mlserver-sklearn")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_venv(venv: Path) -> Path:
    """The ``mlserver`` program of ``venv``; the venv is made and filled if missing."""
    program = venv / "bin" / "mlserver"
    ready = venv / ".stealml-ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        *PACKAGES], check=True, timeout=900)
        ready.write_text(" ".join(PACKAGES) + "\n")
    return program


@contextmanager
def serve_sklearn(model: Any, name: str, workdir: Path, venv: Path,
                  startup_timeout: float = 180.0) -> Iterator[str]:
    """Serve a fitted scikit-learn ``model`` with MLServer on 127.0.0.1; yield its URL.

    The model is written with joblib (MLServer's format) into ``workdir``, with
    ``"parallel_workers": 0`` (the default worker pool fails with current uvloop).
    """
    import joblib

    program = ensure_venv(venv)
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text(json.dumps({
        "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"}}))
    port = free_port()
    (workdir / "settings.json").write_text(json.dumps({
        "debug": False, "parallel_workers": 0, "host": "127.0.0.1", "http_port": port,
        "grpc_port": free_port(), "metrics_endpoint": None, "metrics_port": free_port()}))
    url = f"http://127.0.0.1:{port}"
    with (workdir / "mlserver.log").open("wb") as log:
        proc = subprocess.Popen([str(program), "start", str(workdir)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(f"{url}/v2/models/{name}/ready", proc, startup_timeout)
            yield url
        finally:
            stop_process(proc, signal.SIGTERM)

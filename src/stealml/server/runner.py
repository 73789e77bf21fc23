"""Running the service: in the foreground (``stealml serve``) or in a background thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from stealml.exceptions import OracleUnavailableError
from stealml.server.app import create_app
from stealml.server.settings import ServiceSettings

__all__ = ["running", "serve", "serving_process", "stop_process", "wait_until_ready"]


def serve(settings: ServiceSettings, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> None:
    """Load the models, then serve until interrupted on ``settings.host`` (loopback by
    default); ``announce`` is told where, once the models are loaded."""
    app = create_app(settings)
    if announce is not None:
        announce(f"serving {', '.join(app.state.service.models)} on "
                 f"http://{settings.host}:{settings.port} (OpenAPI at /docs)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=5)


@contextmanager
def running(app: ServiceSettings | Any, host: str = "127.0.0.1", port: int = 0,
            startup_timeout: float = 30.0) -> Iterator[str]:
    """Run the service (or any ASGI app) in a background thread; yield its base URL.

    ``port=0`` takes a free port. The server stops when the block ends.

    Examples
    --------
    >>> import httpx
    >>> with running(ServiceSettings(models=[])) as url:
    ...     httpx.get(url + "/health").json()["status"]
    'ok'
    """
    asgi = create_app(app) if isinstance(app, ServiceSettings) else app
    config = uvicorn.Config(asgi, host=host, port=port, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="stealml-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise OracleUnavailableError(f"the service did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OracleUnavailableError(f"the server exited with status {proc.returncode} "
                                         f"before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise OracleUnavailableError(f"{url} did not answer within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stop a server started in its own session (its process group), gently then not."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextmanager
def serving_process(args: list[str], port: int, host: str = "127.0.0.1",
                    log: str | os.PathLike[str] = os.devnull,
                    env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``stealml serve ARGS --host HOST --port PORT`` as a process; yield its URL.

    The server gets its own process (and GIL): what a benchmark or a command-line test
    needs. Its output goes to ``log``; ``env`` adds environment variables (settings
    such as ``STEALML_SERVE_LOG_SYNC``).
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stealml", "serve", *args,
                                 "--host", host, "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
        try:
            wait_until_ready(f"http://{host}:{port}/health", proc)
            yield f"http://{host}:{port}"
        finally:
            stop_process(proc)

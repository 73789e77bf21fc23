"""The service's errors and their JSON bodies.

stealml's routes answer ``{"error": {"code": "...", "message": "..."}}``; the Open
Inference Protocol routes (``/v2/...``) answer ``{"error": "..."}`` as that protocol says.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stealml.exceptions import InvalidInputError

__all__ = ["ApiError", "install_error_handlers"]


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a message and optional headers."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _body(request: Request, code: str, message: str) -> dict[str, Any]:
    if request.url.path.startswith("/v2/"):
        return {"error": message}
    return {"error": {"code": code, "message": message}}


def _respond(request: Request, status: int, code: str, message: str,
             headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_body(request, code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "malformed request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes a JSON body; nothing escapes as an HTML page or a 500 trace."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
        return _respond(request, 422, "invalid_input", str(exc))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _respond(request, 422, "malformed_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _respond(request, exc.status_code, code, str(exc.detail),
                        dict(exc.headers or {}))

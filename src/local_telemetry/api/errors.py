"""One JSON error shape for every 4xx/5xx: ``{"detail": ...}``, logged once, here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from local_telemetry.api.http import ApiError, JSONBody
from local_telemetry.ingest import StorageUnavailable, WriterBusy, WriterStopped

log = logging.getLogger("local_telemetry.api")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status_code >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc)
    return JSONBody({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return JSONBody(
        {"detail": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
        for e in exc.errors()
    ]
    return JSONBody({"detail": detail}, status_code=422)


async def _writer_stopped(request: Request, exc: Exception) -> Response:
    return JSONBody(
        {"detail": "Server is shutting down"}, status_code=503, headers={"Retry-After": "5"}
    )


async def _writer_busy(request: Request, exc: Exception) -> Response:
    # Handlers that submit through runs.submit_write answer this themselves; this catches
    # every other write (maintenance, keys, alerts) the same way instead of a 500.
    return JSONBody(
        {"detail": "Server busy: write queue full"}, status_code=503, headers={"Retry-After": "1"}
    )


STORAGE_RETRY_AFTER_SECONDS = 30


def storage_unavailable_reply(
    exc: StorageUnavailable,
) -> tuple[int, dict[str, str], dict[str, str]]:
    """Status, body and headers for a write the storage refused: 507 when full, 503
    when read-only or failing; ``Retry-After`` either way, as space may come back."""
    status = 507 if exc.full else 503
    headers = {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)}
    return status, {"detail": str(exc)}, headers


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StorageUnavailable)
    status, body, headers = storage_unavailable_reply(exc)
    return JSONBody(body, status_code=status, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONBody({"detail": "Internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into ``{"detail": ...}`` answers."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(WriterStopped, _writer_stopped)
    app.add_exception_handler(WriterBusy, _writer_busy)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(Exception, _unexpected)


_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"description": "A message, or a list of problems."}},
}
_PROBLEMS = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "loc", "msg"],
                        "properties": {
                            "type": {"type": "string"},
                            "loc": {"type": "array", "description": "body/query/path, then keys"},
                            "msg": {"type": "string"},
                        },
                    },
                },
            ]
        }
    },
}
_BODY_ERRORS = {
    "413": "Request body larger than the endpoint's limit (read no further)",
    "415": "Content-Type is neither application/json nor */*+json (none: read as JSON)",
}
_METHODS = ("get", "put", "post", "patch", "delete")


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers every operation can give to an OpenAPI ``schema``: 422 (bad
    input: a message or a list of problems), 503 (busy, shutting down, storage not
    writable), 429 under ``/api/`` (rate limits), 404 with a path parameter, 413/415/507
    with a request body. Returns ``schema`` (changed in place)."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses["422"] = _answer("Invalid input: every problem, naming its field", _PROBLEMS)
            responses.setdefault(
                "503", _answer("Busy, shutting down or storage not writable (Retry-After)", _ERROR)
            )
            if path.startswith("/api/"):
                responses.setdefault("429", _answer("Rate limited (see Retry-After)", _ERROR))
            if "{" in path:
                responses.setdefault("404", _answer("Not found", _ERROR))
            if "requestBody" in operation:
                for code, description in _BODY_ERRORS.items():
                    responses.setdefault(code, _answer(description, _ERROR))
                responses.setdefault("507", _answer("Storage full (see Retry-After)", _ERROR))
    return schema

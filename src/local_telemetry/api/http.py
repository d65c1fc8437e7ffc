"""Reading JSON request bodies safely and writing JSON responses fast.

Bodies are streamed with a size cap (413 past it, without buffering the rest) and parsed
with orjson, which refuses NaN/Infinity, numbers that overflow a double, lone UTF-16
surrogates and nesting deeper than 1024 levels. Duplicate keys: the last one wins.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered as ``{"detail": ...}`` with ``status_code`` and extra headers."""

    def __init__(
        self, status_code: int, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}


class JSONBody(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content`` with orjson."""
        return orjson.dumps(content)


def validation_detail(exc: ValidationError, location: str) -> list[dict[str, Any]]:
    """A pydantic error as FastAPI's 422 ``detail`` list (without echoing inputs)."""
    return [
        {
            "type": err["type"],
            "loc": [location, *err["loc"]],
            "msg": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON; 413/415/422 ``ApiError`` when it cannot be."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and not (media == "application/json" or media.endswith("+json")):
        raise ApiError(415, f"Content-Type must be application/json, not {media!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"Request body larger than {limit} bytes")
    if not body.strip():
        raise ApiError(422, [{"type": "missing", "loc": ["body"], "msg": "Request body is empty"}])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            422,
            [{"type": "json_invalid", "loc": ["body", exc.pos], "msg": f"Invalid JSON: {exc.msg}"}],
        ) from None


def validate(model: type[M], data: Any, location: str = "body") -> M:
    """``model`` validated from ``data``; a 422 ``ApiError`` listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, validation_detail(exc, location)) from None

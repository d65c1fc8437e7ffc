"""Reading JSON request bodies safely and writing JSON responses fast.

Bodies are streamed with a size cap (413 past it, without buffering the rest) and parsed
with orjson, which refuses NaN/Infinity, numbers that overflow a double, lone UTF-16
surrogates and nesting deeper than 1024 levels. Duplicate keys: the last one wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import Receive

M = TypeVar("M", bound=BaseModel)


class RowModel(Protocol):
    """A request model that becomes one stored row (``RunEventCreate``, ``RunImport``)."""

    @classmethod
    def model_validate(cls, obj: Any) -> Self: ...

    def to_row(self) -> dict[str, Any]: ...


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


@dataclass(frozen=True)
class Incoming:
    """What a handler needs of a request, whether FastAPI or the fast path received it."""

    content_type: str | None
    content_length: str | None
    receive: Receive
    query: Mapping[str, str]

    async def json(self, limit: int) -> Any:
        """The body parsed as JSON (see :func:`read_json`)."""
        return await read_json(self.content_type, self.content_length, self.receive, limit)


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


async def read_json(
    content_type: str | None, content_length: str | None, receive: Receive, limit: int
) -> Any:
    """The request body parsed as JSON; 413/415/422 ``ApiError`` when it cannot be.

    Reads the ASGI ``receive`` channel directly, stopping as soon as ``limit`` is passed.
    """
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media and not (media == "application/json" or media.endswith("+json")):
        raise ApiError(415, f"Content-Type must be application/json, not {media!r}")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise ApiError(413, f"Request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body.strip():
        raise ApiError(422, [{"type": "missing", "loc": ["body"], "msg": "Request body is empty"}])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            422,
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", exc.pos],
                    "msg": f"Invalid JSON: {exc.msg}",
                }
            ],
        ) from None


def validate_array(model: type[RowModel], data: Any, limit: int, noun: str) -> list[dict[str, Any]]:
    """The rows (``to_row()``) of a JSON array of ``model`` items, at most ``limit``: all
    valid, or a 422 naming every problem (an item's index comes right after ``body``)."""
    if not isinstance(data, list):
        message = f"Body must be a JSON array of {noun}"
        raise ApiError(422, [{"type": "list_type", "loc": ["body"], "msg": message}])
    if len(data) > limit:
        message = f"Request has {len(data)} {noun}; at most {limit}"
        raise ApiError(422, [{"type": "too_long", "loc": ["body"], "msg": message}])
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(data):
        try:
            rows.append(model.model_validate(item).to_row())
        except ValidationError as exc:
            for error in validation_detail(exc, "body"):
                error["loc"].insert(1, index)
                problems.append(error)
    if problems:
        raise ApiError(422, problems)
    return rows


def validate(model: type[M], data: Any, location: str = "body") -> M:
    """``model`` validated from ``data``; a 422 ``ApiError`` listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, validation_detail(exc, location)) from None

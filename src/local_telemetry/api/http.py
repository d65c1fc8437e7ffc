"""Reading JSON request bodies safely and writing JSON responses fast.

Bodies are streamed with a size cap (413 past it, without buffering the rest) and parsed
with orjson, which refuses NaN/Infinity, numbers that overflow a double, lone UTF-16
surrogates and nesting deeper than 1024 levels: each is a 422. Integer literals are read
exactly (orjson would read those past 2**64 as floats), so the field rules of
``schemas.py`` refuse the ones outside the signed 64-bit range, naming the field.
A missing Content-Type is read as JSON; one that is not ``application/json`` or
``*+json`` is a 415. Duplicate keys: the last one wins.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import Receive

M = TypeVar("M", bound=BaseModel)

# The texts of integers orjson cannot read exactly (it reads them as floats): below
# -2**63 (a minus and 19+ digits) or above 2**64-1 (20+ digits). A 19-digit positive
# number, like a nanosecond timestamp, is read exactly and needs no second parse. Found
# by mapping every digit to "9" (bytes.translate, C speed) and two substring searches:
# a regex over every body cost several times the JSON parse itself.
_DIGITS_AS_NINES = bytes.maketrans(
    bytes(range(256)),
    bytes(0x39 if 0x30 <= c <= 0x39 else (c if c == 0x2D else 0x20) for c in range(256)),
)
_NEGATIVE_19 = b"-" + b"9" * 19
_POSITIVE_20 = b"9" * 20


def _has_inexact_integer(body: bytes) -> bool:
    """Whether ``body`` may hold an integer text that orjson would read as a float."""
    digits = body.translate(_DIGITS_AS_NINES)
    return _NEGATIVE_19 in digits or _POSITIVE_20 in digits


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
    body = await read_body(content_type, content_length, receive, limit)
    if not body.strip():
        raise ApiError(422, [{"type": "missing", "loc": ["body"], "msg": "Request body is empty"}])
    return parse_json(body)


async def read_body(
    content_type: str | None, content_length: str | None, receive: Receive, limit: int
) -> bytes:
    """The raw body of a JSON request: 415 for another content type (none: JSON), 413
    as soon as ``limit`` is passed (by ``Content-Length`` or while reading: the rest is
    never buffered)."""
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
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json_error(position: Any, message: str) -> ApiError:
    return ApiError(422, [{"type": "json_invalid", "loc": ["body", position], "msg": message}])


def parse_json(body: bytes) -> Any:
    """``body`` parsed as JSON, or a 422 ``ApiError`` saying why it cannot be."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        message = f"Invalid JSON: {exc.msg}"
        if "depth limit" in exc.msg or "recursion" in exc.msg:
            message = "Invalid JSON: nested more than 1024 levels deep"
        raise _json_error(exc.pos, message) from None
    if _has_inexact_integer(body):
        # orjson reads integers past 2**64 as floats: the stdlib parser reads them exactly
        # (orjson already proved the text valid JSON, at most 1024 levels deep).
        try:
            return json.loads(body)
        except RecursionError:
            raise _json_error(0, "Invalid JSON: nested too deep") from None
        except ValueError:  # an integer past the interpreter's 4,300-digit limit
            raise _json_error(0, "Invalid JSON: a number with too many digits") from None
    return data


def ignored_fields(model: type[BaseModel], data: Any, expected: Iterable[str] = ()) -> list[str]:
    """The sorted top-level keys of ``data`` (an object, or an array of objects) that
    ``model`` does not know and that are not ``expected`` (sent by design, not read):
    ignored on create, and listed in the answer."""
    items: Iterable[Any] = data if isinstance(data, list) else (data,)
    known = _known_fields(model, tuple(expected))
    return sorted({k for item in items if isinstance(item, dict) for k in item if k not in known})


@functools.cache
def _known_fields(model: type[BaseModel], expected: tuple[str, ...]) -> frozenset[str]:
    """The field names and aliases of ``model`` plus ``expected`` (once per model)."""
    aliases = (f.alias for f in model.model_fields.values() if f.alias)
    return frozenset((*model.model_fields, *expected, *aliases))


def with_ignored(
    answer: dict[str, Any], model: type[BaseModel], data: Any, expected: Iterable[str] = ()
) -> dict[str, Any]:
    """``answer`` plus ``ignored_fields`` when ``data`` held unknown fields (else as is,
    so answers stay byte-identical for clients that send only known fields)."""
    unknown = ignored_fields(model, data, expected)
    if unknown:
        answer["ignored_fields"] = unknown
    return answer


MAX_PATH_ID_CHARS = 1024


def check_path_id(value: str, noun: str = "Run") -> str:
    """``value`` when it can name a stored row; else a 404 (a NUL, a lone surrogate or an
    oversized id can never have been stored, and PostgreSQL cannot even compare them)."""
    if "\x00" in value or len(value) > MAX_PATH_ID_CHARS:
        raise ApiError(404, f"{noun} not found")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(404, f"{noun} not found") from None
    return value


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

"""Key management: ``POST/GET /api/v1/keys``, ``DELETE /api/v1/keys/{id}`` (admin scope).

A created key is answered once, in the 201 body; only its SHA-256 hash and prefix are
stored (``api/auth.py``), so no later request can show it again. Keys are written
through the server's single writer like every other write; a revoke takes effect at
once in this process (its cache entry is dropped) and within
``auth.CACHE_SECONDS`` in other worker processes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from local_telemetry.api.auth import KeyRing, hash_key, key_active, new_key
from local_telemetry.api.deps import state
from local_telemetry.api.http import ApiError, JSONBody, validate
from local_telemetry.api.maintenance import optional_body
from local_telemetry.api.runs import submit_write
from local_telemetry.durations import parse_duration
from local_telemetry.storage.base import API_KEY_SCOPES, CreateApiKey, RevokeApiKey
from local_telemetry.timestamps import to_stored

EXPIRY_UNITS = "smhdw"
"""Units of ``expires_in`` (seconds too: short-lived keys for jobs and tests)."""
MAX_ID = 2**63 - 1


class KeyCreate(BaseModel):
    """Body of ``POST /api/v1/keys``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    """What the key is for (shown in listings)."""
    scope: str
    """``read``, ``ingest`` or ``admin``."""
    expires_in: str | None = None
    """Lifetime like ``30d``, ``12h``, ``90s`` (unset: the key does not expire)."""

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("name must not contain control characters")
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if value not in API_KEY_SCOPES:
            raise ValueError(f"scope must be one of {', '.join(API_KEY_SCOPES)}")
        return value

    @field_validator("expires_in")
    @classmethod
    def _lifetime(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value, units=EXPIRY_UNITS)  # ValueError names the forms
        return value


class CreatedKey(BaseModel):
    """The 201 answer: the only time ``key`` is ever shown."""

    id: int
    key: str
    name: str
    scope: str
    prefix: str
    created_at: str
    expires_at: str | None


class KeyInfo(BaseModel):
    """A key as listings show it (never the key nor its hash)."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    active: bool


router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def key_ring(request: Request) -> KeyRing:
    """The application's :class:`KeyRing`."""
    ring: KeyRing = request.app.state.key_ring
    return ring


def _info(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "active": key_active(row)}


@router.post(
    "",
    status_code=201,
    summary="Create an API key (shown once)",
    response_model=None,
    responses={201: {"model": CreatedKey}, 422: {"description": "Invalid body"}},
)
async def create_key(request: Request) -> JSONBody:
    """Create a key with ``scope`` read, ingest or admin and an optional lifetime
    ``expires_in``; the answer holds the key itself, which is never shown again."""
    body = await optional_body(request, KeyCreate)
    if body is None:
        body = validate(KeyCreate, {})  # 422 naming the missing fields
    expires_at = None
    if body.expires_in is not None:
        lifetime = parse_duration(body.expires_in, units=EXPIRY_UNITS)
        expires_at = to_stored(datetime.now(UTC) + lifetime)
    # 48 random bits of prefix: a clash with a stored key (the column is UNIQUE) is
    # as likely as guessing a 15-digit number, so it is not retried.
    key, prefix = new_key()
    op = CreateApiKey(body.name, body.scope, prefix, hash_key(key), expires_at)
    row = await submit_write(state(request), op)
    return JSONBody({**row, "key": key}, status_code=201)


@router.get(
    "",
    summary="List API keys (never the keys)",
    response_model=None,
    responses={200: {"model": list[KeyInfo]}},
)
async def list_keys(request: Request) -> JSONBody:
    """Every key, oldest first, with ``active`` false once revoked or expired."""
    app_state = state(request)
    rows = await app_state.read(app_state.store.list_api_keys)
    return JSONBody([_info(row) for row in rows])


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    response_model=None,
    responses={200: {"model": KeyInfo}, 404: {"description": "No such key"}},
)
async def revoke_key(request: Request, key_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> JSONBody:
    """Revoke the key now: requests with it get 401 from this moment on."""
    row = await submit_write(state(request), RevokeApiKey(key_id))
    if row is None:
        raise ApiError(404, f"No API key with id {key_id}")
    key_ring(request).forget(row["prefix"])
    return JSONBody(_info(row))

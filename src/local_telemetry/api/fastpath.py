"""Serve the hot run endpoints straight from ASGI, skipping FastAPI's routing layer.

FastAPI's routing, dependency solving and middleware stack cost about half of a small
request's time. This ASGI app matches the run endpoints itself and calls the same
handlers (``api/runs.py``) the FastAPI routes call, so answers are identical; anything
it does not match (docs, system endpoints, 404/405s, lifespan) goes to FastAPI.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from local_telemetry.api.deps import AppState
from local_telemetry.api.errors import storage_unavailable_reply
from local_telemetry.api.http import ApiError, ClientDisconnected, Incoming
from local_telemetry.api.runs import COLLECTION_HANDLERS, RUN_HANDLERS, Reply
from local_telemetry.ingest import StorageUnavailable, WriterStopped

log = logging.getLogger("local_telemetry.api")

PREFIX = "/api/v1/runs"


class FastPaths:
    """ASGI app answering the run endpoints; everything else goes to ``fallback``."""

    def __init__(self, fallback: ASGIApp, app_state: AppState) -> None:
        self.fallback = fallback
        self.app_state = app_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch a request to its run handler, or pass it on to FastAPI."""
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.fallback(scope, receive, send)
            return
        method = scope["method"]
        path: str = scope["path"]
        event_id = None
        if path == PREFIX:
            handler: Any = COLLECTION_HANDLERS.get((method, ""))
        elif path == PREFIX + "/batch" and method == "POST":
            handler = COLLECTION_HANDLERS[("POST", "batch")]
        elif path.startswith(PREFIX + "/"):
            event_id, slash, suffix = path[len(PREFIX) + 1 :].partition("/")
            # "/runs/{id}/" is FastAPI's (a redirect), like any path we do not know.
            known = event_id and not (slash and not suffix)
            handler = RUN_HANDLERS.get((method, suffix)) if known else None
        else:
            handler = None
        if handler is None:
            await self.fallback(scope, receive, send)
            return
        incoming = _incoming(scope, receive)
        try:
            if event_id is None:
                status, body = await handler(self.app_state, incoming)
            else:
                status, body = await handler(self.app_state, incoming, event_id)
            headers: dict[str, str] = {}
        except ApiError as exc:
            status, body, headers = exc.status_code, {"detail": exc.detail}, exc.headers
        except WriterStopped:
            status, body = 503, {"detail": "Server is shutting down"}
            headers = {"Retry-After": "5"}
        except StorageUnavailable as exc:
            status, body, headers = storage_unavailable_reply(exc)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("%s %s failed", method, path)
            status, body, headers = 500, {"detail": "Internal server error"}, {}
        await _send_json(send, (status, body), headers)


def _incoming(scope: Scope, receive: Receive) -> Incoming:
    content_type = content_length = None
    for name, value in scope["headers"]:  # the first of repeated headers, as Starlette
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"content-length" and content_length is None:
            content_length = value.decode("latin-1")
    query_string: bytes = scope.get("query_string", b"")
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return Incoming(content_type, content_length, receive, query)


async def _send_json(send: Send, reply: Reply, headers: dict[str, str]) -> None:
    status, content = reply
    body = orjson.dumps(content)
    raw_headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})

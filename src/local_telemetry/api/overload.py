"""A server-wide cap on requests in flight: beyond it, a fast 503 with ``Retry-After``.

Under a flood every admitted request costs memory and event-loop time; without a cap
the server keeps accepting work it cannot finish and every answer (``/health``
included) gets slow. Requests over the cap are answered at once, without reading their
body, so a flood degrades into quick 503s a client retries. ``/health`` is exempt so
that monitoring keeps seeing the server alive while it sheds load. A request counts
while the server works on it, not while it waits for its client's body.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/health"})
RETRY_AFTER_SECONDS = 1

_BODY = orjson.dumps({"detail": "Server busy: too many requests in flight, retry shortly"})
_HEADERS = [
    (b"content-length", str(len(_BODY)).encode()),
    (b"content-type", b"application/json"),
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
]


class ConcurrencyCap:
    """ASGI layer admitting at most ``limit`` HTTP requests at once."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 503 when ``limit`` are already running."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        # One event loop, no await between test and increment: no lock needed.
        if self.in_flight >= self.limit:
            self.rejected += 1
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, self._body_outside_cap(receive), send)
        finally:
            self.in_flight -= 1

    def _body_outside_cap(self, receive: Receive) -> Receive:
        """``receive`` that frees the request's slot while it waits for body bytes.

        A request waiting for its client uses no server capacity, and its wait is
        bounded by the body deadline (``api/slow_clients.py``); counting it would let a
        few slow uploaders lock every other client out.
        """
        body_done = False

        async def receive_body() -> Message:
            nonlocal body_done
            if body_done:  # e.g. Starlette listening for a disconnect: counts as usual
                return await receive()
            self.in_flight -= 1
            try:
                message = await receive()
            finally:
                self.in_flight += 1
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        return receive_body

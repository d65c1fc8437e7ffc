"""CORS for a configured allow-list of origins (``TELEMETRY_CORS_ORIGINS``), as ASGI.

Off unless origins are listed. A request whose ``Origin`` is not listed passes through
untouched: no CORS header at all, and its preflight ``OPTIONS`` reaches the router like
any other request (405/404), so a browser refuses the cross-origin call. A listed origin
gets ``Access-Control-Allow-Origin`` echoed (``*`` when ``*`` is listed, allowed only with
auth on), the methods and headers our API uses, and the rate-limit headers exposed.
Credentials (cookies) are never allowed: API clients send ``Authorization`` themselves.
Starlette's ``CORSMiddleware`` is not used because it answers a refused preflight with
its allow-methods and allow-headers lists, and adds headers for unlisted origins.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = b"GET, POST, PATCH, PUT, DELETE"
ALLOW_HEADERS = b"Authorization, Content-Type"
EXPOSE_HEADERS = b"Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining"
MAX_AGE_SECONDS = 600


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` in ``Vary`` (the answer depends on it: caches must know)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"origin" not in value.lower():
                headers[index] = (name, value + b", Origin")
            return headers
    return [*headers, (b"vary", b"Origin")]


class CrossOrigin:
    """ASGI layer answering CORS for ``origins`` (exact ``scheme://host[:port]`` or ``*``)."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.any_origin = "*" in self.origins

    def _allowed(self, origin: bytes | None) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if origin is None:
            return None
        if self.any_origin:
            return b"*"
        return origin if origin.decode("latin-1") in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights of listed origins; add CORS headers to their other answers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"origin" and origin is None:
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
        allow = self._allowed(origin)
        if allow is not None and scope["method"] == "OPTIONS" and preflight is not None:
            await self._preflight(send, allow)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _vary_origin(list(message.get("headers", [])))
                if allow is not None:
                    headers.append((b"access-control-allow-origin", allow))
                    headers.append((b"access-control-expose-headers", EXPOSE_HEADERS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _preflight(send: Send, allow: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", allow),
                    (b"access-control-allow-methods", ALLOW_METHODS),
                    (b"access-control-allow-headers", ALLOW_HEADERS),
                    (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

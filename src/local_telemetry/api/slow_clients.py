"""Deadlines for slow clients: a request's headers and body must arrive in time.

uvicorn closes idle keep-alive connections, but a client that sends a byte a second
(slowloris) keeps a connection, and in the body phase a request slot, forever. This
module subclasses uvicorn's HTTP protocol (httptools when installed, else h11, as
uvicorn's ``auto``) with two deadlines per request:

* headers: from the moment the connection is ready for a request (connection made,
  previous response sent) until the request's headers are complete;
* body: from headers complete until the last body byte.

When one passes before the server has started its response, the client gets
``408 {"detail": ...}`` with ``Connection: close`` and the connection is closed; a
handler waiting for the body sees a disconnect, so nothing of the request is stored.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

import orjson

try:  # the protocol uvicorn's "auto" picks
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is a dependency of uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def _timeout_response(what: str, seconds: float) -> bytes:
    body = orjson.dumps({"detail": f"Request timeout: {what} not received within {seconds:g} s"})
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class DeadlineProtocol(_Base):
    """uvicorn's HTTP protocol with header and body deadlines (see the module)."""

    def __init__(
        self, *args: Any, header_timeout: float = 10.0, body_timeout: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._watched_cycle: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the headers deadline of the first request."""
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, then move the deadline to the request's new phase."""
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or cycle is self._watched_cycle:
            if cycle is not None and not cycle.more_body and self._phase == "body":
                self._cancel_deadline()  # the body is complete
            return
        # Headers of a new request are complete.
        self._watched_cycle = cycle
        self._cancel_deadline()
        if cycle.more_body:
            self._start("body", self.body_timeout)

    def on_response_complete(self) -> None:
        """The response is sent: the next request's headers are due, unless that request
        was pipelined: then its headers are in already and it may run as long as it
        needs (a headers deadline on it would cut its response)."""
        pipelined = bool(getattr(self, "pipeline", None))
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if pipelined:
            self._cancel_deadline()
            self._watched_cycle = self.cycle
        else:
            self._await_headers()

    # ----- deadlines -----

    _phase: str | None = None

    def _await_headers(self) -> None:
        self._cancel_deadline()
        self._watched_cycle = self.cycle
        self._start("headers", self.header_timeout)

    def _start(self, phase: str, seconds: float) -> None:
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = None

    def _expired(self, phase: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == "headers" and cycle is not self._watched_cycle:
            return  # headers arrived meanwhile (pipelined with the previous response)
        if phase == "body" and (cycle is None or not cycle.more_body):
            return
        if phase == "headers":
            self.transport.write(_timeout_response("request headers", seconds))
        elif not cycle.response_started:  # a handler that already answered keeps its answer
            self.transport.write(_timeout_response("request body", seconds))
        self.transport.close()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """The protocol "class" for ``uvicorn.run(http=...)``: :class:`DeadlineProtocol`
    with these deadlines (a partial, so it pickles for worker processes)."""
    factory = functools.partial(
        DeadlineProtocol, header_timeout=header_timeout, body_timeout=body_timeout
    )
    return cast(type[asyncio.Protocol], factory)

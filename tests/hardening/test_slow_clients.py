"""Slowloris: 300 connections dribbling a byte at a time cannot exhaust the server.

A third connect and send nothing, a third dribble request headers, a third send
complete headers and dribble the body. With 2 s header/body deadlines each is answered
408 (or simply closed) and dropped, normal requests are served all the while, and none
of the dribbled bodies is stored.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
import uuid

import httpx
import orjson

from support import ServerProcess, StartServer, new_run, query

SLOW_CONNECTIONS = 300
DEADLINE_SECONDS = "2"
DRIBBLE_INTERVAL = 0.5
GUARD_SECONDS = 60.0  # "did not hang": far above the 2 s deadlines
NORMAL_REQUESTS = 10


class Dribbler(threading.Thread):
    """Sends one byte per connection every ``DRIBBLE_INTERVAL`` until the server closes
    it; keeps what each connection received."""

    def __init__(self, sockets: dict[socket.socket, bytes]) -> None:
        super().__init__(daemon=True)
        self.pending = dict(sockets)  # socket -> bytes still to send
        self.received: dict[int, bytes] = {}
        self.closed: set[int] = set()
        self.still_open: int = len(sockets)

    def run(self) -> None:
        """Dribble and watch for answers until every connection is closed (or guard)."""
        selector = selectors.DefaultSelector()
        for sock in self.pending:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + GUARD_SECONDS
        while self.pending and time.monotonic() < deadline:
            for key, _ in selector.select(DRIBBLE_INTERVAL):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    self.received[sock.fileno()] = self.received.get(sock.fileno(), b"") + data
                    continue
                self._closed(selector, sock)
            for sock, rest in list(self.pending.items()):
                if not rest:
                    continue
                try:
                    sock.send(rest[:1])
                    self.pending[sock] = rest[1:]
                except OSError:
                    self._closed(selector, sock)
        self.still_open = len(self.pending)
        for sock in self.pending:
            sock.close()

    def _closed(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        if sock in self.pending:
            self.closed.add(sock.fileno())
            selector.unregister(sock)
            del self.pending[sock]
            sock.close()


def _slow_sockets(server: ServerProcess, body_ids: list[str]) -> dict[socket.socket, bytes]:
    sockets: dict[socket.socket, bytes] = {}
    for index in range(SLOW_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setblocking(False)
        kind = index % 3
        if kind == 0:  # connects, sends nothing
            sockets[sock] = b""
            continue
        run = new_run(agent_name="slowloris")
        body = orjson.dumps(run)
        head = (
            f"POST /api/v1/runs HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        if kind == 1:  # headers a byte at a time
            sockets[sock] = head + body
        else:  # headers at once, body a byte at a time
            sock.sendall(head)
            sockets[sock] = body
            body_ids.append(run["event_id"])
    return sockets


def test_slow_clients_get_408_and_dropped_while_normal_requests_are_served(
    start_server: StartServer,
) -> None:
    server = start_server(
        TELEMETRY_HEADER_TIMEOUT_SECONDS=DEADLINE_SECONDS,
        TELEMETRY_BODY_TIMEOUT_SECONDS=DEADLINE_SECONDS,
        # Fewer slots than slow uploaders: a request waiting for its body takes none.
        TELEMETRY_MAX_CONCURRENT_REQUESTS="16",
    )
    body_ids: list[str] = []
    dribbler = Dribbler(_slow_sockets(server, body_ids))
    dribbler.start()

    agent = f"normal-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=10) as api:
        for _ in range(NORMAL_REQUESTS):  # while every slow connection is still open
            assert api.post("/api/v1/runs", json=new_run(agent_name=agent)).status_code == 201
            assert api.get("/health").status_code == 200
    dribbler.join(GUARD_SECONDS + 10)

    assert dribbler.still_open == 0  # every slow connection was dropped by the server
    assert len(dribbler.closed) == SLOW_CONNECTIONS
    answers = list(dribbler.received.values())
    assert answers, "no slow client got a 408"
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"detail":"Request timeout: request' in answer
    # Header dribblers and body dribblers both got their 408.
    assert any(b"request headers not received" in answer for answer in answers)
    assert any(b"request body not received" in answer for answer in answers)
    # Nothing of a body that never arrived is stored.
    placeholders = ",".join("?" * len(body_ids))
    sql = f"SELECT count(*) FROM agent_runs WHERE event_id IN ({placeholders})"
    assert query(server, sql, body_ids) == [(0,)]
    count = query(server, "SELECT count(*) FROM agent_runs WHERE agent_name = ?", [agent])
    assert count == [(NORMAL_REQUESTS,)]

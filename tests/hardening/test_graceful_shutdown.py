"""SIGTERM: requests in flight are answered and stored, new connections are refused,
the writer drains its queue, the process exits cleanly.

"In flight" is made deterministic: raw connections send a request's headers and half
its body before SIGTERM and the rest after it, so the server must keep serving them
while it shuts down. Client threads keep writing across the signal too.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid

import httpx
import orjson

from support import ServerProcess, StartServer, new_run, query

IN_FLIGHT = 20
LOAD_THREADS = 4
GUARD_SECONDS = 30.0
HELD_SECONDS = 2.0


def _half_sent(server: ServerProcess, run: dict[str, object]) -> tuple[socket.socket, bytes]:
    body = orjson.dumps(run)
    head = (
        f"POST /api/v1/runs HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=GUARD_SECONDS)
    half = len(body) // 2
    sock.sendall(head + body[:half])
    return sock, body[half:]


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):  # the server closes after answering (shutting down)
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def _load(
    url: str, agent: str, acked: list[str], statuses: list[int], stop: threading.Event
) -> None:
    with httpx.Client(base_url=url, timeout=GUARD_SECONDS) as client:
        while not stop.is_set():
            run = new_run(agent_name=agent)
            try:
                response = client.post("/api/v1/runs", json=run)
            except httpx.TransportError:
                return  # refused or closed once shutdown began: allowed
            statuses.append(response.status_code)
            if response.status_code == 201:
                acked.append(run["event_id"])


def test_sigterm_answers_in_flight_requests_refuses_new_ones_and_drains(
    start_server: StartServer,
) -> None:
    server = start_server(TELEMETRY_BODY_TIMEOUT_SECONDS="120")
    assert server.process is not None
    agent = f"term-{uuid.uuid4().hex[:8]}"
    acked: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(server.url, agent, acked, statuses, stop))
        for _ in range(LOAD_THREADS)
    ]
    for thread in threads:
        thread.start()
    in_flight_runs = [new_run(agent_name=agent) for _ in range(IN_FLIGHT)]
    in_flight = [_half_sent(server, run) for run in in_flight_runs]
    time.sleep(0.5)  # the load is running, the half-sent requests are in their handlers

    server.process.send_signal(signal.SIGTERM)
    # Shutdown has begun (the listener closes first), yet the process waits for the
    # half-sent requests: a new connection is refused meanwhile.
    refused = False
    deadline = time.monotonic() + GUARD_SECONDS
    while not refused and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                time.sleep(0.05)
        except OSError:
            refused = True
    assert refused
    assert server.process.poll() is None
    stop.set()
    for thread in threads:
        thread.join(GUARD_SECONDS)

    # The rest of the bodies comes well after the signal: the server waits for them
    # (up to TELEMETRY_SHUTDOWN_TIMEOUT_SECONDS, 30 s) instead of cutting them.
    time.sleep(HELD_SECONDS)
    assert server.process.poll() is None
    answers = []
    for sock, rest in in_flight:
        sock.sendall(rest)
        answers.append(_answer(sock))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
        assert b'"status":"created"' in answer
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert server.process.wait(GUARD_SECONDS) in (0, -signal.SIGTERM)
    assert set(statuses) <= {201, 503}, statuses

    stored = {
        row[0]
        for row in query(server, "SELECT event_id FROM agent_runs WHERE agent_name = ?", [agent])
    }
    assert {run["event_id"] for run in in_flight_runs} <= stored
    assert acked
    assert set(acked) <= stored
    assert "Application shutdown complete" in server.log()  # the writer drained and stopped

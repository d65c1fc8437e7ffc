"""Load generation for the overload and fault tests (and ``bench/flood.py``).

* :func:`run_flood` starts the flood client (this file run as a script) in a process of
  its own, so the test process stays free to poll ``/health`` on time;
* :class:`HealthPoller` polls ``/health`` every ~100 ms in a thread and keeps latencies;
* :func:`peak_rss_mb` reads a process's peak resident memory (VmHWM).

The flood client: ``connections`` coroutines, one raw keep-alive connection each, hammer
``POST /api/v1/runs`` (most), ``POST /api/v1/runs/batch`` and ``PATCH`` of runs they
created, without pausing on 503 (a hostile flood). Every request has a timeout that
only guards against a hang; the summary (JSON on stdout) counts statuses, answers that
break the overload contract, timeouts and transport errors, and lists every
acknowledged event_id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

HANG_GUARD_SECONDS = 30.0
BATCH_SIZE = 10
HEALTH_INTERVAL_SECONDS = 0.1
FLOOD_CLIENT = Path(__file__).resolve()


def run_body(agent_name: str) -> dict[str, Any]:
    """A small valid create body with a fresh event_id."""
    tag = uuid.uuid4().hex[:12]
    return {
        "event_id": str(uuid.uuid4()),
        "run_id": f"run-{tag}",
        "agent_name": agent_name,
        "job_type": "flood-job",
        "start_time": "2026-01-12T10:30:00Z",
    }


@dataclass
class Reply:
    """A response as the raw flood client read it."""

    status: int
    headers: dict[str, str]
    body: bytes


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client on one connection.

    httpx spends milliseconds of CPU per request with hundreds of connections; a flood
    client that slow would measure itself, not the server. Our server always answers
    with ``content-length``, which is all this parser needs.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        """Send one request (JSON ``body``) and read its answer; reconnect if needed."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        )
        try:
            self._writer.write(head.encode() + payload)
            await self._writer.drain()
            raw_head = await self._reader.readuntil(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            data = await self._reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            await self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, data)

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


def retry_after_ok(headers: dict[str, str]) -> bool:
    """Whether a 503/429 carries ``Retry-After`` as whole seconds."""
    return headers.get("retry-after", "").isdigit()


@dataclass
class FloodTally:
    """What the flood client saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    contract_breaks: list[str] = field(default_factory=list)
    timeouts: int = 0
    transport_errors: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0

    def record(self, reply: Reply, what: str) -> bool:
        """Count ``reply``; True when it acknowledged the write."""
        status = reply.status
        self.requests += 1
        self.statuses[status] += 1
        if status in (503, 429):
            if not retry_after_ok(reply.headers):
                self.contract_breaks.append(f"{what}: {status} without integer Retry-After")
            return False
        if not 200 <= status < 300:  # another 5xx, or a 4xx for a valid request
            self.contract_breaks.append(f"{what}: {status} {reply.body[:200]!r}")
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        """The tally as JSON (status codes as strings)."""
        return {
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "contract_breaks": self.contract_breaks[:50],
            "timeouts": self.timeouts,
            "transport_errors": self.transport_errors[:50],
            "acked": self.acked,
            "requests": self.requests,
            "seconds": self.seconds,
        }


async def _worker(
    conn: RawConnection, agent: str, deadline: float, tally: FloodTally, seed: int
) -> None:
    rng = random.Random(seed)
    mine: list[str] = []
    while time.monotonic() < deadline:
        roll = rng.random()
        try:
            if roll < 0.15 and mine:
                event_id = rng.choice(mine)
                patch = {"status": "success", "items_succeeded": rng.randint(0, 99)}
                reply = await asyncio.wait_for(
                    conn.request("PATCH", f"/api/v1/runs/{event_id}", patch), HANG_GUARD_SECONDS
                )
                tally.record(reply, "PATCH")
            elif roll < 0.30:
                batch = [run_body(agent) for _ in range(BATCH_SIZE)]
                reply = await asyncio.wait_for(
                    conn.request("POST", "/api/v1/runs/batch", batch), HANG_GUARD_SECONDS
                )
                if tally.record(reply, "batch"):
                    ids = [run["event_id"] for run in batch]
                    tally.acked.extend(ids)
                    mine.extend(ids[:1])
            else:
                run = run_body(agent)
                reply = await asyncio.wait_for(
                    conn.request("POST", "/api/v1/runs", run), HANG_GUARD_SECONDS
                )
                if tally.record(reply, "create"):
                    tally.acked.append(run["event_id"])
                    mine.append(run["event_id"])
        except TimeoutError:
            tally.timeouts += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.transport_errors.append(f"{type(exc).__name__}: {exc}")
    await conn.close()


async def flood(url: str, connections: int, seconds: float, agent: str) -> FloodTally:
    """Hammer ``url`` with ``connections`` concurrent clients for ``seconds``."""
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    tally = FloodTally()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _worker(RawConnection(host, port), agent, deadline, tally, seed)
            for seed in range(connections)
        )
    )
    tally.seconds = time.monotonic() - started
    return tally


def run_flood(url: str, connections: int, seconds: float, agent: str) -> subprocess.Popen[bytes]:
    """Start the flood client in a process of its own; read it with :func:`flood_result`."""
    command = [sys.executable, str(FLOOD_CLIENT), url, str(connections), str(seconds), agent]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def flood_result(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Wait for the flood client (``timeout`` guards a hang) and return its summary."""
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"flood client failed ({process.returncode}):\n{err.decode()}")
    result: dict[str, Any] = json.loads(out)
    return result


class HealthPoller(threading.Thread):
    """Polls ``/health`` every ~100 ms; keeps each latency and any failure."""

    def __init__(self, url: str, guard_seconds: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.guard_seconds = guard_seconds
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Poll until :meth:`finish`."""
        with httpx.Client(base_url=self.url, timeout=self.guard_seconds) as client:
            while not self._stop_event.wait(HEALTH_INTERVAL_SECONDS):
                started = time.perf_counter()
                try:
                    status = client.get("/health").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.latencies.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(f"status {status}")

    def finish(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop_event.set()
        self.join(self.guard_seconds + 5)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _main() -> None:
    parser = argparse.ArgumentParser(description="Flood client: prints a JSON summary.")
    parser.add_argument("url")
    parser.add_argument("connections", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("agent")
    args = parser.parse_args()
    tally = asyncio.run(flood(args.url, args.connections, args.seconds, args.agent))
    json.dump(tally.to_json(), sys.stdout)


if __name__ == "__main__":
    _main()

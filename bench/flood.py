"""Flood benchmark: 256 connections for 20 s against a fresh server, as issue 10 asks.

    .venv/bin/python bench/flood.py [--connections 256] [--seconds 20] [--cap N]

Starts a fresh ``local-telemetry serve`` (SQLite, default settings unless ``--cap``
sets ``TELEMETRY_MAX_CONCURRENT_REQUESTS``), floods it from a separate process
(``tests/hardening/load_support.py``: creates, batches, PATCHes, never pausing on
503) while polling ``/health`` every ~100 ms, then prints requests/s, status counts,
``/health`` p50/p99 and whether p99 <= 500 ms, the server's peak RSS (VmHWM) and
whether it is <= 300 MB, the time to the first normal answer after the flood, and
whether every acknowledged run is stored. Asserts nothing; exit status 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "hardening"))
from load_support import (  # noqa: E402
    HealthPoller,
    flood_result,
    peak_rss_mb,
    percentile,
    run_flood,
)

from support import ServerProcess, new_run, query  # noqa: E402

HEALTH_P99_TARGET_MS = 500
RSS_TARGET_MB = 300
AFTER_FLOOD_TARGET_SECONDS = 2.0


def _first_normal_answer(url: str, agent: str) -> tuple[float, int]:
    """Seconds until a normal create is answered 201, and the attempts it took."""
    started = time.perf_counter()
    attempts = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            attempts += 1
            if client.post("/api/v1/runs", json=new_run(agent_name=agent)).status_code == 201:
                return time.perf_counter() - started, attempts
            time.sleep(0.05)


def main() -> None:
    """Run the flood once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cap", type=int, help="TELEMETRY_MAX_CONCURRENT_REQUESTS")
    args = parser.parse_args()
    env = {} if args.cap is None else {"TELEMETRY_MAX_CONCURRENT_REQUESTS": str(args.cap)}
    with tempfile.TemporaryDirectory(prefix="lt-flood-") as tmp:
        server = ServerProcess(Path(tmp) / "telemetry.sqlite", env).start()
        assert server.process is not None
        try:
            agent = f"flood-{uuid.uuid4().hex[:8]}"
            poller = HealthPoller(server.url)
            poller.start()
            client = run_flood(server.url, args.connections, args.seconds, agent)
            result = flood_result(client, timeout=args.seconds + 300)
            poller.finish()
            after, attempts = _first_normal_answer(server.url, agent)
            rss = peak_rss_mb(server.process.pid)
            sql = "SELECT event_id FROM agent_runs WHERE agent_name = ?"
            stored = {row[0] for row in query(server, sql, [agent])}
        finally:
            server.stop()
    statuses = result["statuses"]
    acked = set(result["acked"])
    p50 = percentile(poller.latencies, 0.5) * 1000
    p99 = percentile(poller.latencies, 0.99) * 1000
    ok_2xx = sum(n for code, n in statuses.items() if code.startswith("2"))
    seconds = result["seconds"]
    cap = args.cap or "default"
    print(f"flood: {args.connections} connections, {seconds:.1f} s, cap {cap}")
    rate, rate_2xx = result["requests"] / seconds, ok_2xx / seconds
    print(f"  requests/s          {rate:.0f} ({rate_2xx:.0f} 2xx/s)")
    print(f"  status counts       {statuses}")
    breaks, errors = len(result["contract_breaks"]), len(result["transport_errors"])
    print(
        f"  contract breaks     {breaks}  timeouts {result['timeouts']}  transport errors {errors}"
    )
    polls, failures = len(poller.latencies), len(poller.failures)
    print(
        f"  /health p50/p99     {p50:.0f} / {p99:.0f} ms over {polls} polls, {failures} "
        f"failures (p99 <= {HEALTH_P99_TARGET_MS} ms: {_met(p99 <= HEALTH_P99_TARGET_MS)})"
    )
    print(
        f"  peak RSS            {rss:.0f} MiB (<= {RSS_TARGET_MB} MB: {_met(rss <= RSS_TARGET_MB)})"
    )
    in_time = after <= AFTER_FLOOD_TARGET_SECONDS and attempts == 1
    print(
        f"  first normal answer {after * 1000:.0f} ms after the flood, attempt {attempts} "
        f"(within {AFTER_FLOOD_TARGET_SECONDS:g} s, first try: {_met(in_time)})"
    )
    print(f"  acknowledged stored {len(acked & stored)} of {len(acked)}")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()

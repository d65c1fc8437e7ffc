"""Scale-out benchmark: run creation with 1 vs 2 API processes on one PostgreSQL.

    .venv/bin/python bench/scale.py [--seconds 20] [--connections 32] [--threads-client]

Starts a throwaway PostgreSQL (``initdb``/``pg_ctl`` as the ``postgres`` user on a free
loopback port, as the tests do: ``tests/pg_support.py``), then for each configuration a
fresh database and one ``local-telemetry serve`` with ``TELEMETRY_API_WORKERS`` = 1, then
2 (uvicorn worker processes sharing one listening socket). Each is loaded with
``POST /api/v1/runs`` of unique ``event_id``s for ``--seconds`` (after a short warm-up)
by ``wrk`` (bench/lua/create.lua, as ``./dev bench`` does) or, without wrk or with
``--threads-client``, by N Python client threads (bounded in time and in count). Prints
requests/s, p50/p99 latency, errors, and the ratio 2-vs-1. Asserts nothing.

The rows stored in each database (warm-up included) are counted straight from PostgreSQL
at the end and printed beside the requests.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from inprocess import BODY  # noqa: E402
from run import WrkResult, wrk  # noqa: E402

from pg_support import PostgresServer  # noqa: E402
from support import ServerProcess  # noqa: E402

WARMUP_SECONDS = 3
MAX_REQUESTS_PER_THREAD = 200_000  # the Python client's count bound


def run_body(event_id: str) -> bytes:
    """A create body like bench/lua/create.lua's (~550 bytes): bench/inprocess.py's."""
    body = {**BODY, "event_id": event_id, "run_id": f"run-{event_id}"}
    body["agent_name"] = f"bench.agent_{hash(event_id) % 10}"
    return orjson.dumps(body)


def threads_load(url: str, threads: int, seconds: float, prefix: str) -> WrkResult:
    """``threads`` clients each POST unique runs until ``seconds`` pass (or the count bound)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(MAX_REQUESTS_PER_THREAD):
                if time.perf_counter() >= deadline:
                    return
                began = time.perf_counter()
                try:
                    response = client.post(
                        "/api/v1/runs",
                        content=run_body(f"{prefix}-{n}-{i}"),
                        headers={"content-type": "application/json"},
                    )
                    if response.status_code != 201:
                        errors[n] += 1
                except httpx.HTTPError:
                    errors[n] += 1
                latencies[n].append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = sorted(x for per in latencies for x in per)

    def pct(q: float) -> float:
        return merged[min(len(merged) - 1, int(q * len(merged)))] if merged else float("nan")

    return WrkResult(
        requests_per_second=len(merged) / elapsed,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        errors=sum(errors),
        requests=len(merged),
    )


def stored_runs(database_url: str) -> int:
    """Rows in the runs table, straight from PostgreSQL."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM agent_runs").fetchone()
    return int(row[0]) if row else -1


def measure(
    pg: PostgresServer,
    workers: int,
    args: argparse.Namespace,
    use_wrk: bool,
    workdir: Path,
) -> tuple[WrkResult, int]:
    """One configuration on a fresh database: (measured load, rows stored)."""
    database_url = pg.create_database()
    server = ServerProcess(
        workdir / f"w{workers}.sqlite",  # unused with PostgreSQL; names the server log
        {
            "TELEMETRY_DATABASE_URL": database_url,
            "TELEMETRY_API_WORKERS": str(workers),
            "TELEMETRY_LOG_LEVEL": "warning",
        },
    )
    server.start()
    try:
        # uvicorn's workers come up one by one: wait until /health answers repeatedly.
        for _ in range(20):
            httpx.get(f"{server.url}/health", timeout=5).raise_for_status()
        tag = f"w{workers}{uuid.uuid4().hex[:6]}"
        if use_wrk:
            wrk(server.url, "create.lua", args.connections, WARMUP_SECONDS, {"BENCH_PREFIX": tag})
            result = wrk(
                server.url,
                "create.lua",
                args.connections,
                args.seconds,
                {"BENCH_PREFIX": tag + "m"},
            )
        else:
            threads_load(server.url, args.connections, WARMUP_SECONDS, tag)
            result = threads_load(server.url, args.connections, args.seconds, tag + "m")
    finally:
        server.stop()
    stored = stored_runs(database_url)
    pg.drop_database(database_url)
    return result, stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per config")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--threads-client", action="store_true", help="Python client threads even if wrk exists"
    )
    args = parser.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None and not args.threads_client
    client = f"wrk -t1 -c{args.connections}" if use_wrk else f"{args.connections} Python threads"
    print(
        f"# {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()};"
        f" client: {client}; {args.seconds} s per configuration (+{WARMUP_SECONDS} s warm-up)"
    )
    pg = PostgresServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="lt-scale-"))
    results: dict[int, WrkResult] = {}
    try:
        for workers in (1, 2):
            result, stored = measure(pg, workers, args, use_wrk, workdir)
            results[workers] = result
            print(
                f"{workers} API process{'es' if workers > 1 else ''}:"
                f" {result.requests_per_second:8.0f} req/s"
                f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms"
                f"  requests {result.requests}  errors {result.errors}"
                f"  rows stored {stored}",
                flush=True,
            )
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    one, two = results[1], results[2]
    ratio = two.requests_per_second / one.requests_per_second if one.requests_per_second else 0
    print(f"ratio 2-vs-1: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

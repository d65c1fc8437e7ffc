"""Benchmark suite: ``./dev bench`` (options: ``./dev bench --help``).

Starts the real server on temporary databases, drives it with ``wrk`` (a Python load
generator tops out near 600 req/s on two cores), and prints one table: scenario, figure,
target, met. The write scenarios also run against a server with reference-style settings
(DELETE journal, one commit per write, FastAPI routing), side by side in the same run,
and the ratio is printed. Nothing here asserts: figures are printed and optionally
written to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua"
sys.path.insert(0, str(HERE.parent / "tests"))
from support import ServerProcess  # noqa: E402

REFERENCE_ENV = {
    "TELEMETRY_DB_JOURNAL_MODE": "DELETE",
    "TELEMETRY_GROUP_COMMIT": "false",
    "TELEMETRY_FAST_PATHS": "false",
}
SEED_AGENTS = 20
SEED_JOB_TYPES = 8
STATUSES = ("success", "success", "success", "failure", "partial", "running", "timeout")


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    figure: str
    target: str
    met: bool | None


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(match[1]) * _UNITS[match[2]] if match else float("nan")


def wrk(
    url: str,
    script: str,
    connections: int,
    seconds: float,
    env: dict[str, str] | None = None,
) -> WrkResult:
    """Run wrk with one thread and a Lua script from bench/lua; parse its report."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        url,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx[1]) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return WrkResult(
        requests_per_second=float(rps[1]) if rps else 0.0,
        p50_ms=_latency_ms(out, "50"),
        p99_ms=_latency_ms(out, "99"),
        errors=errors,
        requests=int(total[1]) if total else 0,
    )


def seed_runs(url: str, count: int, prefix: str, batch: int = 1000, threads: int = 2) -> float:
    """Store ``count`` runs through the batch endpoint; return runs per second.

    The runs spread over agents, job types, statuses and a year of start times, with
    ``event_id`` = ``{prefix}-{n}`` so later scenarios can address them.
    """
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def body(start: int) -> bytes:
        items = []
        for n in range(start, min(start + batch, count)):
            started = base + dt.timedelta(seconds=n * 31)
            items.append(
                {
                    "event_id": f"{prefix}-{n}",
                    "run_id": f"run-{n}",
                    "agent_name": f"seed.agent_{n % SEED_AGENTS}",
                    "job_type": f"job_{n % SEED_JOB_TYPES}",
                    "status": STATUSES[n % len(STATUSES)],
                    "start_time": started.isoformat(),
                    "created_at": started.isoformat(),
                    "duration_ms": n % 90_000,
                    "items_discovered": 100,
                    "items_succeeded": n % 100,
                    "environment": "production",
                    "metrics_json": {"input_tokens": n % 5000, "cost_usd": 0.01},
                }
            )
        return orjson.dumps(items)

    starts = list(range(0, count, batch))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    if not starts:
                        return
                    start = starts.pop()
                response = client.post(
                    "/api/v1/runs/batch",
                    content=body(start),
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return count / (time.perf_counter() - began)


def rss_mb(server: ServerProcess) -> float:
    """Resident memory of the server process, in MiB."""
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def time_to_healthy(db_path: Path, env: dict[str, str]) -> tuple[float, ServerProcess]:
    """Start a server on ``db_path``; seconds from spawn to the first 200 of /health."""
    began = time.perf_counter()
    server = start(db_path, env)
    return time.perf_counter() - began, server


def check(value: float, target: float, higher_is_better: bool = True) -> bool:
    """Whether ``value`` meets ``target``."""
    return value >= target if higher_is_better else value <= target


def write_scenarios(
    server: ServerProcess, seconds: float, tag: str, seeded: int
) -> dict[str, WrkResult]:
    """The write scenarios against one server (used for ours and the reference)."""
    return {
        "create16": wrk(server.url, "create.lua", 16, seconds, {"BENCH_PREFIX": f"{tag}c16"}),
        "create64": wrk(server.url, "create.lua", 64, seconds, {"BENCH_PREFIX": f"{tag}c64"}),
        "patch16": wrk(server.url, "patch.lua", 16, seconds, {"BENCH_SEEDED": str(seeded)}),
        "batch": wrk(server.url, "batch.lua", 4, seconds, {"BENCH_PREFIX": f"{tag}b"}),
    }


STARTED: list[ServerProcess] = []


def start(db_path: Path, env: dict[str, str]) -> ServerProcess:
    """Start a server that ``main`` stops at the end, whatever happens."""
    server = ServerProcess(db_path, env)
    STARTED.append(server)
    return server.start()


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table; stop every server started."""
    try:
        return run_all(argv)
    finally:
        for server in STARTED:
            server.stop()


def run_all(argv: list[str] | None) -> int:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs seeded for reads")
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--write-results", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--skip-reference", action="store_true", help="no reference server")
    args = parser.parse_args(argv)
    seconds = args.seconds
    rows: list[Row] = []
    notes: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="lt-bench-"))
    print(f"bench: databases in {work}", flush=True)

    # ----- writes on a fresh database (ours), seeded with runs to PATCH -----
    patch_seed = 100_000
    inprocess = subprocess.run(
        [sys.executable, str(HERE / "inprocess.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    notes.append(f"same creates through the ASGI stack in-process, no HTTP: {inprocess}")
    ours = start(work / "writes.sqlite", {})
    seed_runs(ours.url, patch_seed, "seed")
    mine = write_scenarios(ours, seconds, "ours", patch_seed)
    sdk = subprocess.run(
        [sys.executable, str(HERE / "sdk_overhead.py"), ours.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    median_us = float(sdk.split()[1])
    rows.append(
        Row("SDK overhead per tracked run (caller thread)", sdk, "median < 50 us", median_us < 50)
    )
    ours.stop()
    reference: dict[str, WrkResult] = {}
    if not args.skip_reference:
        ref = start(work / "reference.sqlite", REFERENCE_ENV)
        seed_runs(ref.url, patch_seed, "seed")
        reference = write_scenarios(ref, seconds, "ref", patch_seed)
        ref.stop()

    def ratio(key: str) -> str:
        if key not in reference or reference[key].requests_per_second == 0:
            return ""
        return f" ({mine[key].requests_per_second / reference[key].requests_per_second:.1f}x ref)"

    c16, c64, p16, batch = mine["create16"], mine["create64"], mine["patch16"], mine["batch"]
    rows += [
        Row(
            "POST /api/v1/runs, 16 conns",
            f"{c16.requests_per_second:,.0f}/s, p99 {c16.p99_ms:.1f} ms{ratio('create16')}",
            ">= 8,000/s, p99 <= 20 ms",
            c16.requests_per_second >= 8000 and c16.p99_ms <= 20,
        ),
        Row(
            "POST /api/v1/runs, 64 conns",
            f"{c64.requests_per_second:,.0f}/s, p99 {c64.p99_ms:.1f} ms, "
            f"{c64.errors} errors{ratio('create64')}",
            ">= 8,000/s, p99 <= 40 ms, 0 errors",
            c64.requests_per_second >= 8000 and c64.p99_ms <= 40 and c64.errors == 0,
        ),
        Row(
            "PATCH /api/v1/runs/{id}, 16 conns",
            f"{p16.requests_per_second:,.0f}/s, p99 {p16.p99_ms:.1f} ms{ratio('patch16')}",
            ">= 6,000/s",
            p16.requests_per_second >= 6000,
        ),
        Row(
            "POST /api/v1/runs/batch, 1,000 runs/request",
            f"{batch.requests_per_second * 1000:,.0f} runs/s{ratio('batch')}",
            ">= 100,000 runs/s",
            batch.requests_per_second * 1000 >= 100_000,
        ),
    ]
    if reference:
        for key, result in reference.items():
            notes.append(
                f"reference-style {key}: {result.requests_per_second:,.1f} req/s, "
                f"p99 {result.p99_ms:.1f} ms, {result.errors} errors"
            )

    # ----- reads on a large database -----
    big = work / "reads.sqlite"
    server = start(big, {})
    seed_rate = seed_runs(server.url, args.runs, "r")
    rss = rss_mb(server)
    notes.append(f"seeded {args.runs:,} runs through the batch endpoint at {seed_rate:,.0f} runs/s")
    rows.append(
        Row(
            f"server RSS after ingesting {args.runs:,} runs",
            f"{rss:.0f} MiB",
            "<= 250 MB",
            rss <= 250,
        )
    )
    server.stop()
    startup, server = time_to_healthy(big, {})
    rows.append(
        Row(
            f"start-up on a {args.runs:,}-run database",
            f"{startup:.2f} s to healthy",
            "<= 1 s",
            startup <= 1.0,
        )
    )
    queries = {
        "unfiltered": "/api/v1/runs?limit=100",
        "agent_name": "/api/v1/runs?limit=100&agent_name=seed.agent_7",
        "job_type": "/api/v1/runs?limit=100&job_type=job_3",
        "status": "/api/v1/runs?limit=100&status=failure",
        "time range": "/api/v1/runs?limit=100&start_time_from=2026-03-01T00:00:00Z"
        "&start_time_to=2026-03-02T00:00:00Z",
    }
    for name, path in queries.items():
        one = wrk(server.url, "get.lua", 1, seconds, {"BENCH_PATH": path})
        many = wrk(server.url, "get.lua", 16, seconds, {"BENCH_PATH": path})
        rows.append(
            Row(
                f"GET list limit=100 ({name})",
                f"p99 {one.p99_ms:.1f} ms at 1 conn; {many.requests_per_second:,.0f}/s at 16",
                "p99 <= 10 ms; >= 1,500/s",
                one.p99_ms <= 10 and many.requests_per_second >= 1500,
            )
        )
    for path in ("/metrics", "/api/v1/metadata", "/health"):
        one = wrk(server.url, "get.lua", 1, seconds, {"BENCH_PATH": path})
        rows.append(
            Row(
                f"GET {path}",
                f"p99 {one.p99_ms:.2f} ms, {one.requests_per_second:,.0f}/s at 1 conn",
                "p99 <= 5 ms",
                one.p99_ms <= 5,
            )
        )

    # ----- writes while 4 connections list -----
    results: dict[str, WrkResult] = {}

    def reads() -> None:
        results["reads"] = wrk(
            server.url, "get.lua", 4, seconds, {"BENCH_PATH": queries["agent_name"]}
        )

    reader = threading.Thread(target=reads)
    reader.start()
    mixed = wrk(server.url, "create.lua", 16, seconds, {"BENCH_PREFIX": "mixed"})
    reader.join()
    alone = wrk(server.url, "create.lua", 16, seconds, {"BENCH_PREFIX": "alone"})
    share = (
        mixed.requests_per_second / alone.requests_per_second if alone.requests_per_second else 0
    )
    rows.append(
        Row(
            "creates while 4 conns list (vs creates alone, same db)",
            f"{mixed.requests_per_second:,.0f}/s vs {alone.requests_per_second:,.0f}/s "
            f"= {share:.0%}; reads {results['reads'].requests_per_second:,.0f}/s",
            ">= 70 %",
            share >= 0.7,
        )
    )
    server.stop()

    table = format_table(rows)
    print(table)
    for note in notes:
        print(f"- {note}")
    if args.write_results:
        write_results(table, notes, args)
    return 0


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| scenario | figure | target | met |", "|---|---|---|---|"]
    for row in rows:
        met = "n/a" if row.met is None else ("met" if row.met else "NOT met")
        lines.append(f"| {row.scenario} | {row.figure} | {row.target} | {met} |")
    return "\n".join(lines)


def write_results(table: str, notes: list[str], args: Any) -> None:
    """Write bench/RESULTS.md with the table, the machine and the commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=HERE,
        check=False,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
            f"- commit: {commit}",
            f"- machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}",
            f"- command: `./dev bench --runs {args.runs} --seconds {args.seconds}`"
            " (wrk -t1, one uvicorn worker, SQLite WAL + synchronous=FULL)",
            "",
            table,
            "",
            *[f"- {note}" for note in notes],
            "",
        ]
    )
    results = HERE / "RESULTS.md"
    # The hand-written analysis (from the first "## " heading on) survives a rewrite.
    previous = results.read_text() if results.exists() else ""
    analysis = previous[previous.find("\n## ") :] if "\n## " in previous else ""
    results.write_text(text + analysis)
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    raise SystemExit(main())

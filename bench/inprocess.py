"""Creates through the full ASGI stack in-process: our code and the writer, no HTTP.

``python bench/inprocess.py [--requests N] [--concurrency C]`` drives
``create_app(settings)`` directly (ASGI scope, receive, send) on a temporary SQLite
file with the production settings (WAL, synchronous=FULL, group commit), C requests at
a time, and prints creates per second. Compared with the wrk figure it shows how much
of a create's cost is the HTTP server layer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from local_telemetry.api.app import create_app
from local_telemetry.cli.server import GIL_SWITCH_INTERVAL_S
from local_telemetry.config import Settings

BODY: dict[str, Any] = {
    "run_id": "run-1",
    "agent_name": "bench.agent_1",
    "job_type": "bench_job",
    "start_time": "2026-01-12T10:30:00Z",
    "status": "running",
    "items_discovered": 100,
    "product": "seo-intelligence",
    "platform": "web",
    "website": "example.com",
    "website_section": "blog",
    "item_name": "how-to-optimize-seo",
    "environment": "production",
    "git_repo": "https://github.com/myorg/myrepo",
    "git_branch": "main",
    "metrics_json": {"input_tokens": 1500, "output_tokens": 3000, "api_cost_usd": 0.05},
    "context_json": {"model": "claude-sonnet", "temperature": 0.7},
}


async def _create(stack: Any, n: int) -> None:
    raw = orjson.dumps({**BODY, "event_id": f"inproc-{n}"})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/runs",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await stack(scope, receive, send)
    if sent[0]["status"] != 201:
        raise RuntimeError(f"create failed: {sent}")


async def measure(requests: int, concurrency: int) -> tuple[float, int]:
    """Creates per second and the number of commits they took."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(db_path=Path(tmp) / "inprocess.sqlite"))
        app_state = app.state.local_telemetry
        app_state.store.migrate()
        app_state.writer.start()
        stack = app.build_middleware_stack()
        began = time.perf_counter()
        for start in range(0, requests, concurrency):
            await asyncio.gather(*(_create(stack, n) for n in range(start, start + concurrency)))
        elapsed = time.perf_counter() - began
        commits = app_state.writer.commits
        app_state.writer.stop()
        app_state.store.close()
    return requests / elapsed, commits


def main() -> None:
    """Print in-process creates per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `local-telemetry serve` does
    rate, commits = asyncio.run(measure(args.requests, args.concurrency))
    print(f"{rate:.0f} creates/s in-process ({commits} commits)")


if __name__ == "__main__":
    main()

"""Time the dashboard's pages (HTTP GET through a real server process) on a large store.

    .venv/bin/python bench/dashboard.py [--db /tmp/kpi1m.sqlite] [--repeat 7]
    .venv/bin/python bench/dashboard.py --now-db /tmp/now1m.sqlite   # standard views

The database is the one ``bench/kpis.py --db PATH`` seeds (1,000,000 runs over the 365
days before 2026-07-01, ten agents); seed it first. The server starts with
``TELEMETRY_ALERT_INTERVAL_SECONDS=0`` (no alert evaluation competing for the readers).

The overview and agent pages keep assembled views fresh (``dashboard/page_cache.py``),
so each is timed twice: *cold*, every request a different window (its ``to`` a second
earlier each time: no cached data), and *warm*, the same URL again (served from the
cache). Windows end at 2026-07-01 (``period=custom``), as the data does. Other pages are
timed as they are; a page that answers 404 (not built yet) is skipped with a note.
Prints the median milliseconds of ``--repeat`` requests per page.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

END = datetime(2026, 7, 1, tzinfo=UTC)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def window_query(length: timedelta, shift_seconds: int = 0) -> str:
    end = END - timedelta(seconds=shift_seconds)
    return urlencode({"period": "custom", "from": stamp(end - length), "to": stamp(end)})


def median_ms(client: httpx.Client, urls: Callable[[int], str], repeat: int) -> float:
    times = []
    for i in range(repeat):
        url = urls(i)
        began = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    return statistics.median(times) * 1000


def start_server(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "TELEMETRY_DB_PATH": str(path),
        "TELEMETRY_API_HOST": "127.0.0.1",
        "TELEMETRY_API_PORT": str(port),
        "TELEMETRY_ALERT_INTERVAL_SECONDS": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "local_telemetry", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/kpi1m.sqlite"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--now-db",
        type=Path,
        help="a second store (seeded if missing: 1,000,000 runs ending now) to time the "
        "standard views (period=24h|7d|30d, no filters) the server keeps built",
    )
    args = parser.parse_args()
    if args.now_db is not None:
        standard_views(args.now_db, args.repeat)
        return
    if not args.db.exists():
        raise SystemExit(f"{args.db} does not exist: seed it with bench/kpis.py --db {args.db}")
    server, url = start_server(args.db)
    repeat = args.repeat
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/?period=24h")  # templates compiled, connections opened
            runs = client.get("/api/v1/runs", params={"limit": 1}).json()
            event_id = runs[0]["event_id"] if runs else "none"
            agent = runs[0]["agent_name"] if runs else "none"
            print(f"{args.db}: median of {repeat} GETs per figure, milliseconds")
            for page, base in (("/", "/?"), (f"/agents/{agent}", f"/agents/{agent}?")):
                for name, length in WINDOWS.items():

                    def cold(i: int, base: str = base, length: timedelta = length) -> str:
                        return base + window_query(length, shift_seconds=i + 1)

                    def warm(i: int, base: str = base, length: timedelta = length) -> str:
                        return base + window_query(length)

                    client.get(warm(0))  # the warm URL's data is cached now
                    cold_ms = median_ms(client, cold, repeat)
                    client.get(warm(0))  # cached again (the cold loop took its time)
                    warm_ms = median_ms(client, warm, repeat)
                    print(f"GET {page} {name:>3}: cold {cold_ms:7.1f}   warm {warm_ms:7.1f}")
            others = (
                ("/runs", "/runs"),
                ("/runs/{event_id}", f"/runs/{event_id}"),
                ("/alerts", "/alerts"),
            )
            for label, path in others:
                first = client.get(path)
                if first.status_code == 404:
                    print(f"GET {label}: skipped (404: the page does not exist yet)")
                    continue
                ms = median_ms(client, lambda i, path=path: path, repeat)
                print(f"GET {label}: {ms:7.1f} (no page cache)")
    finally:
        server.terminate()
        server.wait(30)


def standard_views(path: Path, repeat: int) -> None:
    """Time the pinned standard overview views on runs that end now."""
    if not path.exists():
        import kpis as seeding

        from local_telemetry.storage.sqlite import SQLiteStore

        seeding.END = datetime.now(UTC)
        store = SQLiteStore(path)
        store.migrate()
        seconds = seeding.seed(store, 1_000_000, 365, 10)
        store.close()
        print(f"seeded 1,000,000 runs ending now in {seconds:.0f} s")
    server, url = start_server(path)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            time.sleep(3)  # the first build of the standard views runs at start-up
            print(f"{path}: median of {repeat} GETs per figure, milliseconds")
            for period, length in WINDOWS.items():
                ms = median_ms(client, lambda i, period=period: f"/?period={period}", repeat)
                cold = median_ms(
                    client,
                    lambda i, length=length: (
                        "/?"
                        + urlencode(
                            {
                                "period": "custom",
                                "from": stamp(datetime.now(UTC) - length),
                                "to": stamp(datetime.now(UTC) - timedelta(seconds=i + 1)),
                            }
                        )
                    ),
                    repeat,
                )
                print(
                    f"GET /?period={period:>3}: {ms:7.1f}   (same window, custom: cold {cold:7.1f})"
                )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()

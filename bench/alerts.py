"""Time one alert evaluation (the built-in rules) on a large store.

    .venv/bin/python bench/alerts.py [--db PATH] [--runs 1000000] [--repeat 5]

Uses the store ``bench/kpis.py`` seeds (runs spread over a year before 2026-07-01,
10 agents; ``--db`` reuses a kept one) and evaluates at 2026-07-01, the instant the
seeded runs end, so every window holds runs. Prints milliseconds per evaluation
(median of ``--repeat``) and what the rules found.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from kpis import END, median_seconds, seed

from local_telemetry import alerts
from local_telemetry.storage.sqlite import SQLiteStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="seeded database to keep and reuse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = args.db or Path(directory) / "alerts.sqlite"
        store = SQLiteStore(path)
        store.migrate()
        with closing(sqlite3.connect(path)) as conn:
            held = conn.execute("SELECT COALESCE(SUM(runs), 0) FROM run_counts").fetchone()[0]
        if not held:
            seed(store, args.runs, 365, 10)
            held = args.runs
        rules = list(alerts.BUILT_IN_RULES)
        findings = alerts.evaluate(store, rules, END)
        ms = median_seconds(lambda: alerts.evaluate(store, rules, END), args.repeat) * 1000
        print(f"{held:,} runs, {len(rules)} rules, {len(findings)} rule/agent pairs")
        print(f"one evaluation: {ms:.1f} ms ({sum(f.firing for f in findings)} firing)")
        store.close()


if __name__ == "__main__":
    main()

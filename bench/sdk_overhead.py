"""SDK overhead on the caller's thread: ``python bench/sdk_overhead.py URL [--runs N]``.

Times ``with client.run(...): pass`` (a start and an end enqueued, delivered by the
background sender to the server at URL) one run at a time and prints the median and
p99 in microseconds. Target: median < 50 µs.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from local_telemetry.client import TelemetryClient


def measure(url: str, runs: int) -> tuple[float, float, dict[str, int]]:
    """Median and p99 (µs) of one tracked run on the caller's thread, and the stats."""
    agent = f"bench.sdk_{uuid.uuid4().hex[:6]}"
    samples: list[float] = []
    with TelemetryClient(url, spool=False, detect_git=False) as client:
        for _ in range(runs):
            began = time.perf_counter_ns()
            with client.run(agent, "sdk_overhead") as run:
                run.update(items_succeeded=1)
            samples.append((time.perf_counter_ns() - began) / 1000)
        client.flush(60)
        stats = client.stats()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], stats


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()
    median, p99, stats = measure(args.url, args.runs)
    print(f"median {median:.1f} us, p99 {p99:.1f} us per tracked run; {stats}")


if __name__ == "__main__":
    main()

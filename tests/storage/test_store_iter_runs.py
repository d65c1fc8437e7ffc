"""``Store.iter_runs`` (the export read): every matching run once, newest first, in
bounded chunks, continuing correctly across runs that share a ``created_at``."""

from __future__ import annotations

from typing import Any

import pytest

from local_telemetry.storage.base import InsertRuns, RunFilter, Store
from local_telemetry.timestamps import normalize
from support import store_row as row


def _seed(store: Store, count: int) -> None:
    # Three created_at values only: most chunk boundaries fall inside a tie.
    rows = [
        row(
            f"r{i:03d}",
            agent_name="alpha" if i % 2 else "beta",
            created_at=normalize(f"2026-01-0{1 + i % 3}T00:00:00Z"),
            metrics_json={"i": i},
        )
        for i in range(count)
    ]
    store.apply([InsertRuns(rows)])


def _all(store: Store, run_filter: RunFilter) -> list[dict[str, Any]]:
    return store.list_runs(RunFilter(**{**run_filter.__dict__, "limit": 1000, "offset": 0}))


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 101, 5000])
def test_iter_runs_yields_every_run_once_in_list_order(store: Store, chunk_size: int) -> None:
    _seed(store, 101)
    chunks = list(store.iter_runs(RunFilter(), chunk_size))
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    runs = [run for chunk in chunks for run in chunk]
    assert runs == _all(store, RunFilter())
    assert len({r["event_id"] for r in runs}) == 101


def test_iter_runs_applies_filters_and_ignores_limit_and_offset(store: Store) -> None:
    _seed(store, 60)
    run_filter = RunFilter(
        agent_name="alpha",
        created_after=normalize("2026-01-01T00:00:00Z"),
        limit=3,
        offset=5,
    )
    runs = [run for chunk in store.iter_runs(run_filter, 4) for run in chunk]
    assert runs == _all(store, run_filter)
    assert len(runs) == 20
    assert all(r["agent_name"] == "alpha" for r in runs)


def test_iter_runs_of_nothing_yields_no_chunk(store: Store) -> None:
    assert list(store.iter_runs(RunFilter(agent_name="nobody"))) == []

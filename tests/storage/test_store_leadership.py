"""Store.lead: one process at a time runs each background job."""

from __future__ import annotations

import time

from local_telemetry.storage.base import Store
from local_telemetry.storage.postgres import PostgresStore


def test_a_single_store_leads_every_role(store: Store) -> None:
    assert store.lead("alerts")
    assert store.lead("alerts")  # asking again keeps it
    assert store.lead("retention")


def test_one_postgres_process_leads_a_role_until_it_stops(postgres_url: str) -> None:
    first, second = (
        PostgresStore(postgres_url, pool_size=1),
        PostgresStore(postgres_url, pool_size=1),
    )
    try:
        first.migrate()
        assert first.lead("alerts")
        assert not second.lead("alerts")
        assert first.lead("alerts")
        assert second.lead("retention")  # roles are independent
        assert not first.lead("retention")
        first.close()  # the leader stops: its session lock goes with its connection
        # The server ends the closed session (and drops its locks) asynchronously: ask
        # until it has (bounded; a hang guard, not a timing assertion).
        deadline = time.monotonic() + 30
        while not second.lead("alerts") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.lead("alerts")
        third = PostgresStore(postgres_url, pool_size=1)
        try:
            assert not third.lead("alerts")
        finally:
            third.close()
    finally:
        second.close()

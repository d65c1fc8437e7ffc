"""The KPI formulas (kpis.py), each against numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from local_telemetry import kpis
from local_telemetry.storage import sqlite as sqlite_module
from local_telemetry.storage.base import InsertRuns, KpiFilter, KpiInputs, UpdateRun, UpsertAgentRun
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import normalize


def test_rates_are_fractions_or_none() -> None:
    assert kpis.rate(1, 4) == 0.25
    assert kpis.rate(0, 3) == 0.0
    assert kpis.rate(0, 0) is None
    assert kpis.resolution_rate(3, 4) == 0.75
    assert kpis.escalation_rate(1, 4) == 0.25
    assert kpis.resolution_rate(0, 0) is None
    assert kpis.self_correction_rate(1, 2) == 0.5
    assert kpis.self_correction_rate(0, 0) is None
    assert kpis.sla_hit_rate(2, 3) == pytest.approx(0.6667, abs=1e-4)
    assert kpis.sla_hit_rate(0, 0) is None


def test_failure_rate_counts_only_completed_runs() -> None:
    counts = {"running": 5, "success": 2, "failure": 1, "partial": 1}
    assert kpis.completed_runs(counts) == 4
    assert kpis.failure_rate(counts) == 0.25
    assert kpis.failure_rate({"running": 3}) is None
    assert kpis.failure_rate({}) is None


def test_sla_hit_needs_end_target_and_duration() -> None:
    assert kpis.sla_hit(30_000, "end", 30)  # exactly at the target
    assert not kpis.sla_hit(30_001, "end", 30)
    assert not kpis.sla_hit(1, None, 30)
    assert not kpis.sla_hit(1, "end", None)
    assert not kpis.sla_hit(None, "end", 30)


def test_effective_duration() -> None:
    start, end = "2026-01-12T10:00:00.000000Z", "2026-01-12T10:00:01.250900Z"
    assert kpis.effective_duration_ms(900, True, start, end) == 900  # supplied wins
    assert kpis.effective_duration_ms(0, False, start, end) == 1250  # rounded down
    assert kpis.effective_duration_ms(0, False, start, None) is None


def test_percentile_is_nearest_rank() -> None:
    values = [50, 10, 40, 20, 30]
    assert kpis.percentile(values, 0.5) == 30  # ceil(2.5) = 3rd
    assert kpis.percentile(values, 0.95) == 50  # ceil(4.75) = 5th
    assert kpis.percentile(values, 0.2) == 10  # ceil(1.0) = 1st
    assert kpis.percentile(list(range(1, 21)), 0.95) == 19  # ceil(19.0) = 19th
    assert kpis.percentile([7], 0.5) == 7
    assert kpis.percentile([], 0.5) is None


def test_averages_and_cost_per_resolved_run() -> None:
    assert kpis.average(11, 3) == pytest.approx(3.6667, abs=1e-4)
    assert kpis.average(0, 0) is None
    assert kpis.cost_per_resolved_run(3.75, 2) == 1.875
    assert kpis.cost_per_resolved_run(3.75, 0) is None


def test_day_and_week_keys() -> None:
    berlin = kpis.zone("Europe/Berlin")
    day = kpis.local_date("2026-01-12T23:30:00.000000Z", berlin)
    assert kpis.day_key(day) == "2026-01-13"
    assert kpis.week_key(day) == "2026-W03"
    utc = kpis.zone("UTC")
    assert kpis.week_key(kpis.local_date("2026-01-01T00:00:00Z", utc)) == "2026-W01"
    assert kpis.week_key(kpis.local_date("2027-01-01T00:00:00Z", utc)) == "2026-W53"
    with pytest.raises(ValueError, match="unknown time zone"):
        kpis.zone("Mars/Olympus")
    assert kpis.whole_hour_zone("Europe/Berlin")
    assert not kpis.whole_hour_zone("Asia/Kolkata")


def test_group_kpis_of_no_measurements() -> None:
    group = kpis.group_kpis(
        {"agent_name": "a"}, KpiInputs(total_runs=1, status_counts={"running": 1})
    )
    assert group["agent_name"] == "a"
    assert (group["completed_runs"], group["failure_rate"], group["p50_duration_ms"]) == (
        0,
        None,
        None,
    )
    assert (group["cost_usd"], group["tokens_input"], group["qc_count"]) == (0.0, 0, 0)


def run(event_id: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "run_id": event_id,
        "agent_name": "agent",
        "job_type": "job",
        "start_time": normalize("2026-01-12T10:00:00Z"),
        **fields,
    }


def test_store_tracks_supplied_durations_and_late_patches(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kpi.sqlite")
    store.migrate()
    try:
        end = normalize("2026-01-12T10:00:02Z")
        store.apply([InsertRuns([run("computed", end_time=end), run("sent", duration_ms=700)])])

        def durations() -> list[int]:
            [inputs] = store.kpi_inputs(KpiFilter(), (), "UTC").values()
            return sorted(inputs.durations_ms)

        assert durations() == [700, 2000]
        # A late PATCH: an end for "sent" changes nothing (its duration was supplied) ...
        store.apply([UpdateRun("sent", {"end_time": normalize("2026-01-12T10:00:09Z")})])
        assert durations() == [700, 2000]
        # ... a duration_ms for "computed" makes it supplied.
        store.apply([UpdateRun("computed", {"duration_ms": 1500})])
        assert durations() == [700, 1500]
        # The agent-runs upsert computes its duration: not supplied, end - start is used.
        started = normalize("2026-01-12T11:00:00Z")
        start = {"agent_name": "agent", "start_time": started}
        assert store.apply([UpsertAgentRun("agent", start, {"job_type": "job"})]) == ["created"]
        ended = {"end_time": normalize("2026-01-12T11:00:03.5Z"), "resolution": "resolved"}
        assert store.apply([UpsertAgentRun("agent", {**ended, "status": "success"})]) == ["updated"]
        assert durations() == [700, 1500, 3500]
    finally:
        store.close()


def test_offset_spans_find_each_change_to_the_second() -> None:
    berlin = kpis.zone("Europe/Berlin")
    first = datetime(2026, 1, 1, tzinfo=UTC)
    spans = kpis.offset_spans(berlin, first, datetime(2026, 12, 31, tzinfo=UTC))
    assert spans == [
        (first, 3600),
        (datetime(2026, 3, 29, 1, tzinfo=UTC), 7200),  # 02:00 CET becomes 03:00 CEST
        (datetime(2026, 10, 25, 1, tzinfo=UTC), 3600),
    ]


@pytest.mark.parametrize("max_spans", [400, 0])  # 0: the UTC-slot fallback
@pytest.mark.parametrize(
    ("tz", "days"),
    [
        ("Europe/Berlin", {"2026-03-29": 1, "2026-03-30": 1}),
        ("Asia/Kolkata", {"2026-03-29": 1, "2026-03-30": 1}),
        ("America/New_York", {"2026-03-28": 1, "2026-03-29": 1}),
    ],
)
def test_local_days_across_a_change_of_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_spans: int, tz: str, days: dict[str, int]
) -> None:
    monkeypatch.setattr(sqlite_module, "_MAX_OFFSET_SPANS", max_spans)
    store = SQLiteStore(tmp_path / "kpi.sqlite")
    store.migrate()
    try:
        # early: 00:30 on the 29th in Berlin (CET, +1), 05:00 on the 29th in Kolkata,
        # 19:30 on the 28th in New York (EDT since 8 March). late: 00:30 on the 30th in
        # Berlin (CEST since 01:00Z on the 29th, +2; with +1 it would be the 29th), 05:00
        # on the 30th in Kolkata, 19:30 on the 29th in New York.
        early = run("early", start_time=normalize("2026-03-28T23:30:00Z"))
        late_utc = "2026-03-29T22:30:00Z" if tz == "Europe/Berlin" else "2026-03-29T23:30:00Z"
        late = run("late", start_time=normalize(late_utc))
        store.apply([InsertRuns([early, late])])
        groups = store.kpi_inputs(KpiFilter(), ("day",), tz)
        assert {key[0]: inputs.total_runs for key, inputs in groups.items()} == days
    finally:
        store.close()

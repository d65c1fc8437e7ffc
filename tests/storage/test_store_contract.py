"""The Store contract: every backend must pass these tests.

Backends are listed in the ``store`` fixture; a new backend (PostgreSQL) adds itself
there and must pass the same suite unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from local_telemetry.storage.base import (
    EVENT_COLUMNS,
    QC_COLUMNS,
    AddQc,
    AppendEvents,
    EndsBeforeStart,
    InsertRuns,
    RunConflict,
    RunFilter,
    Store,
    UpdateRun,
    UpsertAgentRun,
)
from local_telemetry.timestamps import normalize, to_stored
from support import store_row as row


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    store.apply([InsertRuns([row("e1")])])
    store.migrate()
    assert store.get_run("e1") is not None


def test_insert_reports_created_then_duplicate(store: Store) -> None:
    [first] = store.apply([InsertRuns([row("e1")])])
    [second] = store.apply([InsertRuns([row("e1", agent_name="other")])])
    assert first == 1
    assert second == 0
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["agent_name"] == "agent-a"


def test_duplicates_inside_one_insert_are_detected(store: Store) -> None:
    [result] = store.apply([InsertRuns([row("e1"), row("e2"), row("e1")])])
    assert result == 2


def test_first_occurrence_wins_across_agents(store: Store) -> None:
    rows = [row("e0", agent_name="b"), row("e1", agent_name="a"), row("e1", agent_name="b")]
    assert store.apply([InsertRuns(rows)]) == [2]
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["agent_name"] == "a"
    window = (normalize("2000-01-01T00:00:00Z"), normalize("2100-01-01T00:00:00Z"))
    assert store.run_counts(*window)[1] == {"a": 1, "b": 1}


def test_defaults_are_filled(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["status"] == "running"
    assert stored["items_discovered"] == 0
    assert stored["duration_ms"] == 0
    assert stored["api_posted"] is False
    assert stored["created_at"].endswith("Z")
    assert stored["updated_at"] is None


def test_json_columns_round_trip_as_objects(store: Store) -> None:
    metrics = {"tokens": 12, "nested": {"list": [1, 2.5, "x"]}, "unicode": "é✓"}
    store.apply([InsertRuns([row("e1", metrics_json=metrics, context_json={})])])
    stored = store.get_run("e1")
    assert stored is not None
    assert stored["metrics_json"] == metrics
    assert stored["context_json"] == {}


def test_update_changes_fields_and_stamps_updated_at(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    [run_id] = store.apply([UpdateRun("e1", {"status": "success", "items_succeeded": 5})])
    assert run_id == "run-e1"
    stored = store.get_run("e1")
    assert stored is not None
    assert (stored["status"], stored["items_succeeded"]) == ("success", 5)
    assert stored["updated_at"] is not None


def test_update_of_missing_run_returns_none(store: Store) -> None:
    assert store.apply([UpdateRun("nope", {"status": "success"})]) == [None]


def test_update_refuses_identity_fields(store: Store) -> None:
    store.apply([InsertRuns([row("e1")])])
    [result] = store.apply([UpdateRun("e1", {"event_id": "e2"})])
    assert isinstance(result, ValueError)
    assert store.get_run("e2") is None


def test_one_failing_operation_leaves_the_rest_of_the_group_committed(store: Store) -> None:
    results = store.apply(
        [
            InsertRuns([row("good-1")]),
            InsertRuns([row("bad", items_failed=-1)]),  # violates the counter CHECK
            InsertRuns([row("good-2")]),
        ]
    )
    assert results[0] == 1
    assert isinstance(results[1], Exception)
    assert results[2] == 1
    assert store.get_run("bad") is None
    assert store.get_run("good-1") is not None
    assert store.get_run("good-2") is not None


def test_failing_insert_stores_none_of_its_rows(store: Store) -> None:
    [result] = store.apply([InsertRuns([row("ok"), row("bad", duration_ms=-5)])])
    assert isinstance(result, Exception)
    assert store.get_run("ok") is None


def _seed_for_listing(store: Store) -> None:
    rows = [
        row(
            "a1", agent_name="alpha", status="success", created_at=normalize("2026-01-01T00:00:00Z")
        ),
        row(
            "a2", agent_name="alpha", status="failure", created_at=normalize("2026-01-02T00:00:00Z")
        ),
        row(
            "b1", agent_name="beta", job_type="job-b", created_at=normalize("2026-01-03T00:00:00Z")
        ),
        row(
            "b2",
            agent_name="beta",
            start_time=normalize("2026-02-01T00:00:00Z"),
            created_at=normalize("2026-01-04T00:00:00Z"),
        ),
    ]
    store.apply([InsertRuns(rows)])


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [r["event_id"] for r in runs]


def test_list_orders_newest_first_with_limit_and_offset(store: Store) -> None:
    _seed_for_listing(store)
    assert ids(store.list_runs(RunFilter())) == ["b2", "b1", "a2", "a1"]
    assert ids(store.list_runs(RunFilter(limit=2, offset=1))) == ["b1", "a2"]


def test_list_filters_combine(store: Store) -> None:
    _seed_for_listing(store)
    assert ids(store.list_runs(RunFilter(agent_name="alpha"))) == ["a2", "a1"]
    assert ids(store.list_runs(RunFilter(agent_name="alpha", status="success"))) == ["a1"]
    assert ids(store.list_runs(RunFilter(job_type="job-b"))) == ["b1"]
    assert ids(store.list_runs(RunFilter(run_id="run-b2"))) == ["b2"]


def test_created_bounds_are_exclusive_and_start_bounds_inclusive(store: Store) -> None:
    _seed_for_listing(store)
    after = RunFilter(created_after=normalize("2026-01-02T00:00:00Z"))
    assert ids(store.list_runs(after)) == ["b2", "b1"]
    before = RunFilter(created_before=normalize("2026-01-02T00:00:00Z"))
    assert ids(store.list_runs(before)) == ["a1"]
    start = RunFilter(start_time_from=normalize("2026-02-01T02:00:00+02:00"))
    assert ids(store.list_runs(start)) == ["b2"]
    until = RunFilter(start_time_to=normalize("2026-01-12T10:00:00Z"))
    assert ids(store.list_runs(until)) == ["b1", "a2", "a1"]


def test_distinct_values_and_counts(store: Store) -> None:
    _seed_for_listing(store)
    assert store.distinct_values() == (["alpha", "beta"], ["job-a", "job-b"])
    total, per_agent, recent = store.run_counts(
        normalize("2026-01-02T12:00:00Z"), normalize("2026-12-31T00:00:00Z")
    )
    assert total == 4
    assert per_agent == {"alpha": 2, "beta": 2}
    assert recent == 2


def test_info_reports_durable_modes(store: Store) -> None:
    info = store.info()
    assert info.journal_mode == "WAL"
    assert info.synchronous == "FULL"


# Costs whose text SQLite's own JSON rendering of a REAL would get wrong (15 significant
# digits, its own exponent form), besides plain ones.
COSTS = (
    0.05,
    1.0,
    0.0,
    3,
    12.5,
    0.1 + 0.2,
    1 / 3,
    1e-5,
    3e-6,
    2.5e-7,
    0.0001,
    1e15,
    1e16,
    9007199254740993,
    123456789.123,
    1e300,
    1.7976931348623157e308,
    5e-324,
)


def test_json_reads_serialize_exactly_like_the_dict_reads(store: Store) -> None:
    varied = [
        row("j1"),
        row(
            "j2",
            metrics_json={"f": 0.05, "big": 2**63 + 5, "neg": -1, "nested": [{"a": None}]},
            context_json={"text": 'é✓ "quoted" \\ \n\t\x01', "ok": True},
            api_posted=True,
            error_details="line1\nline2\u2028",
            git_repo="git@github.com:org/repo.git",
            git_commit_hash="abcdef1",
            items_succeeded=2**63 - 1,
            resolution="escalated",
            input_kind='email ✓ "q"',
            self_corrected=False,
            tokens_input=2**63 - 1,
            tokens_output=0,
            cost_usd=0.05,
            sla_target_seconds=300,
        ),
        row(
            "j3",
            status="failure",
            end_time=normalize("2026-01-12T11:00:00Z"),
            resolution="resolved",
            self_corrected=True,
            cost_usd=1.0,
        ),
        *(row(f"cost-{n}", cost_usd=cost) for n, cost in enumerate(COSTS)),
    ]
    store.apply([InsertRuns(varied)])
    as_dicts = store.list_runs(RunFilter())
    as_json = store.list_runs_json(RunFilter())
    assert [text for text, _, _ in as_json] == [orjson.dumps(run).decode() for run in as_dicts]
    assert [(repo, sha) for _, repo, sha in as_json] == [
        (run["git_repo"], run["git_commit_hash"]) for run in as_dicts
    ]
    single = store.get_run_json("j2")
    assert single is not None
    assert single[0] == orjson.dumps(store.get_run("j2")).decode()
    assert store.get_run_json("missing") is None
    costs = {run["event_id"]: run["cost_usd"] for run in as_dicts}
    assert [costs[f"cost-{n}"] for n in range(len(COSTS))] == [float(c) for c in COSTS]
    assert (costs["j2"], costs["j3"]) == (0.05, 1.0)
    assert '"cost_usd":0.05,' in single[0]
    assert '"self_corrected":false,' in single[0]


# ----- agent outcome fields -----

OUTCOME = {
    "resolution": "resolved",
    "input_kind": "chat",
    "self_corrected": True,
    "tokens_input": 1500,
    "tokens_output": 2**63 - 1,
    "cost_usd": 0.0375,
    "sla_target_seconds": 60,
}


def test_outcome_fields_default_to_null(store: Store) -> None:
    store.apply([InsertRuns([row("o1")])])
    stored = store.get_run("o1")
    assert stored is not None
    assert {key: stored[key] for key in OUTCOME} == dict.fromkeys(OUTCOME)
    assert stored["self_corrected"] is None  # not false: "not reported"
    assert stored["api_posted"] is False


def test_outcome_fields_round_trip_and_update(store: Store) -> None:
    store.apply([InsertRuns([row("o1", **OUTCOME)])])
    stored = store.get_run("o1")
    assert stored is not None
    assert {key: stored[key] for key in OUTCOME} == OUTCOME
    change = {"self_corrected": False, "cost_usd": 2, "resolution": "failed"}
    assert store.apply([UpdateRun("o1", change)]) == ["run-o1"]
    stored = store.get_run("o1")
    assert stored is not None
    assert stored["self_corrected"] is False
    assert stored["cost_usd"] == 2.0
    assert isinstance(stored["cost_usd"], float)  # stored as floating point
    assert stored["resolution"] == "failed"
    store.apply([UpdateRun("o1", dict.fromkeys(OUTCOME))])
    stored = store.get_run("o1")
    assert stored is not None
    assert {key: stored[key] for key in OUTCOME} == dict.fromkeys(OUTCOME)


def test_integer_cost_is_returned_as_a_float(store: Store) -> None:
    store.apply([InsertRuns([row("o1", cost_usd=3)])])
    stored = store.get_run("o1")
    assert stored is not None
    assert (stored["cost_usd"], type(stored["cost_usd"])) == (3.0, float)
    text = store.get_run_json("o1")
    assert text is not None
    assert '"cost_usd":3.0,' in text[0]


@pytest.mark.parametrize(
    "bad",
    [{"tokens_input": -1}, {"tokens_output": -1}, {"cost_usd": -0.5}, {"sla_target_seconds": 0}],
)
def test_out_of_range_outcome_numbers_are_refused(store: Store, bad: dict[str, Any]) -> None:
    [result] = store.apply([InsertRuns([row("o1", **bad)])])
    assert isinstance(result, Exception)
    assert store.get_run("o1") is None


# ----- run events -----


def event(message: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": normalize("2026-01-12T10:00:00Z"),
        "level": "info",
        "message": message,
        "data": None,
    }
    base.update(fields)
    return base


def messages(events: list[dict[str, Any]] | None) -> list[str]:
    assert events is not None
    return [e["message"] for e in events]


def test_events_are_appended_and_listed_in_order(store: Store) -> None:
    store.apply([InsertRuns([row("r1"), row("r2")])])
    data = {"rows": 42, "nested": {"list": [1, 2.5, None]}, "text": "é✓"}
    first = [event("one", data=data), event("two", level="error")]
    assert store.apply([AppendEvents("r1", first)]) == [2]
    assert store.apply([AppendEvents("r2", [event("other")])]) == [1]
    assert store.apply([AppendEvents("r1", [event("three")])]) == [1]
    listed = store.list_events("r1")
    assert listed is not None
    assert messages(listed) == ["one", "two", "three"]
    assert [list(e) for e in listed] == [list(EVENT_COLUMNS)] * 3
    one = listed[0]
    assert (one["event_id"], one["level"], one["data"]) == ("r1", "info", data)
    assert one["timestamp"] == "2026-01-12T10:00:00.000000Z"
    assert listed[1]["data"] is None
    assert listed[0]["id"] < listed[1]["id"] < listed[2]["id"]
    assert messages(store.list_events("r2")) == ["other"]


def test_events_of_an_unknown_run(store: Store) -> None:
    assert store.apply([AppendEvents("nope", [event("lost")])]) == [None]
    assert store.list_events("nope") is None
    store.apply([InsertRuns([row("nope")])])
    assert store.list_events("nope") == []  # nothing was kept from before the run existed


def test_events_run_without_events_lists_empty(store: Store) -> None:
    store.apply([InsertRuns([row("r1")])])
    assert store.list_events("r1") == []
    assert store.apply([AppendEvents("r1", [])]) == [0]


def test_events_page_with_after_id_and_limit(store: Store) -> None:
    store.apply([InsertRuns([row("r1")])])
    store.apply([AppendEvents("r1", [event(f"m{n}") for n in range(7)])])
    page = store.list_events("r1", limit=3)
    assert messages(page) == ["m0", "m1", "m2"]
    assert page is not None
    page = store.list_events("r1", after_id=page[-1]["id"], limit=3)
    assert messages(page) == ["m3", "m4", "m5"]
    assert page is not None
    rest = store.list_events("r1", after_id=page[-1]["id"])
    assert messages(rest) == ["m6"]
    assert rest is not None
    assert store.list_events("r1", after_id=rest[-1]["id"]) == []


def test_events_keep_queue_order_inside_one_group(store: Store) -> None:
    results = store.apply(
        [
            AppendEvents("g1", [event("too early")]),
            InsertRuns([row("g1")]),
            AppendEvents("g1", [event("after insert")]),
            UpdateRun("g1", {"status": "success"}),
            InsertRuns([row("g2")]),
            AppendEvents("g2", [event("g2 event")]),
        ]
    )
    assert results == [None, 1, 1, "run-g1", 1, 1]
    assert messages(store.list_events("g1")) == ["after insert"]
    assert messages(store.list_events("g2")) == ["g2 event"]


@pytest.mark.parametrize(
    "broken",
    [
        event("no level", level=None),  # NOT NULL column
        event("not JSON", data={"set": {1, 2}}),
        {"message": "no timestamp", "level": "info"},
    ],
    ids=["null level", "data not JSON", "missing key"],
)
def test_failing_event_append_stores_none_of_its_events(
    store: Store, broken: dict[str, Any]
) -> None:
    store.apply([InsertRuns([row("r1")])])
    bad = [event("fine"), broken]
    results = store.apply(
        [AppendEvents("r1", bad), AppendEvents("r1", [event("kept")]), InsertRuns([row("r2")])]
    )
    assert isinstance(results[0], Exception)
    assert results[1:] == [1, 1]
    assert messages(store.list_events("r1")) == ["kept"]


def test_recent_counts_equal_a_row_by_row_count_for_any_window(store: Store) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    stamps = [base + timedelta(minutes=37 * n) for n in range(200)]  # ~5 days
    rows = [row(f"w{n}", created_at=to_stored(t)) for n, t in enumerate(stamps)]
    store.apply([InsertRuns(rows[:120]), InsertRuns(rows[120:])])
    windows = [
        (base + timedelta(hours=5, minutes=13), base + timedelta(hours=29, minutes=13)),
        (base + timedelta(hours=5), base + timedelta(hours=29)),
        (base + timedelta(minutes=10), base + timedelta(minutes=50)),
        (base + timedelta(hours=2, minutes=59), base + timedelta(hours=3, minutes=1)),
        (base - timedelta(days=1), base + timedelta(days=10)),
        (stamps[40], stamps[80]),  # bounds exactly on rows: (since, until]
    ]
    for since, until in windows:
        expected = sum(1 for t in stamps if since < t <= until)
        assert store.run_counts(to_stored(since), to_stored(until))[2] == expected, (since, until)


# ----- agent runs (UpsertAgentRun) and QC reviews (AddQc) -----

T0 = normalize("2026-01-12T10:00:00Z")
T1 = normalize("2026-01-12T10:01:30.250Z")


def start(**fields: Any) -> dict[str, Any]:
    return {"agent_name": "agent-q", "start_time": T0, **fields}


def ended(**fields: Any) -> dict[str, Any]:
    return start(end_time=T1, resolution="resolved", status="success", **fields)


ON_CREATE = {"job_type": "agent_run", "start_time": normalize("2026-01-12T09:00:00Z")}


def upsert(store: Store, fields: dict[str, Any], *qc: dict[str, Any]) -> Any:
    [result] = store.apply([UpsertAgentRun("u1", fields, ON_CREATE, list(qc))])
    return result


def test_upsert_creates_then_reports_duplicate(store: Store) -> None:
    assert upsert(store, start(tokens_input=3, context_json={"k": [1]})) == "created"
    first = store.get_run("u1")
    assert upsert(store, start(tokens_input=3, context_json={"k": [1]})) == "duplicate"
    assert store.get_run("u1") == first
    assert first is not None
    assert (first["run_id"], first["job_type"], first["status"]) == ("u1", "agent_run", "running")
    assert (first["start_time"], first["tokens_input"]) == (T0, 3)
    assert first["context_json"] == {"k": [1]}
    window = (normalize("2000-01-01T00:00:00Z"), normalize("2100-01-01T00:00:00Z"))
    assert store.run_counts(*window)[1] == {"agent-q": 1}


def test_upsert_uses_on_create_values_only_for_a_new_run(store: Store) -> None:
    assert upsert(store, {"agent_name": "agent-q"}) == "created"
    stored = store.get_run("u1")
    assert stored is not None
    assert stored["start_time"] == ON_CREATE["start_time"]


def test_upsert_ends_a_running_run(store: Store) -> None:
    upsert(store, start())
    assert upsert(store, ended(cost_usd=0.5)) == "updated"
    stored = store.get_run("u1")
    assert stored is not None
    assert (stored["status"], stored["resolution"], stored["end_time"]) == (
        "success",
        "resolved",
        T1,
    )
    assert (stored["duration_ms"], stored["cost_usd"]) == (90_250, 0.5)
    assert stored["updated_at"] is not None
    assert upsert(store, ended(cost_usd=0.5)) == "duplicate"


def test_upsert_refuses_to_contradict_an_ended_run(store: Store) -> None:
    upsert(store, ended(tokens_output=4, context_json={"a": 1}))
    before = store.get_run("u1")
    for change in (
        {"end_time": T0},
        {"resolution": "failed", "status": "failure"},
        {"tokens_output": 5},
        {"start_time": normalize("2026-01-12T09:59:00Z")},
        {"context_json": {"a": 2}},
        {"agent_name": "agent-other"},
    ):
        result = upsert(store, {**ended(tokens_output=4), **change}, {"score": 3})
        assert isinstance(result, RunConflict), change
    assert store.get_run("u1") == before
    assert store.list_qc("u1") == []
    assert upsert(store, ended(tokens_input=1, context_json={"b": 2})) == "updated"
    after = store.get_run("u1")
    assert after is not None
    assert (after["tokens_input"], after["context_json"]) == (1, {"a": 1, "b": 2})


def test_upsert_refuses_an_end_before_the_stored_start(store: Store) -> None:
    upsert(store, start())
    early = normalize("2026-01-12T09:59:59Z")
    result = upsert(store, {"agent_name": "agent-q", "end_time": early, "status": "success"})
    assert isinstance(result, EndsBeforeStart)
    [created] = store.apply(
        [UpsertAgentRun("u2", {"agent_name": "a", "start_time": T1, "end_time": T0}, ON_CREATE)]
    )
    assert isinstance(created, EndsBeforeStart)
    assert store.get_run("u2") is None
    stored = store.get_run("u1")
    assert stored is not None
    assert stored["end_time"] is None


def test_upsert_stores_new_reviews_only(store: Store) -> None:
    assert upsert(store, start(), {"score": 5, "notes": "n", "reviewer": "r"}) == "created"
    assert upsert(store, start(), {"score": 5, "notes": "n", "reviewer": "r"}) == "duplicate"
    assert upsert(store, start(), {"score": 5, "notes": "n", "reviewer": "r"}, {"score": 2}) == (
        "updated"
    )
    reviews = store.list_qc("u1")
    assert reviews is not None
    assert [(r["score"], r["notes"], r["reviewer"]) for r in reviews] == [
        (5, "n", "r"),
        (2, None, None),
    ]


def test_a_failing_upsert_stores_nothing_of_itself_only(store: Store) -> None:
    results = store.apply(
        [
            UpsertAgentRun("u1", start(), ON_CREATE, [{"score": 1}, {"score": 9}]),
            UpsertAgentRun("u2", start(), ON_CREATE, [{"score": 4}]),
        ]
    )
    assert isinstance(results[0], Exception)
    assert results[1] == "created"
    assert store.get_run("u1") is None
    assert store.list_qc("u2") is not None
    window = (normalize("2000-01-01T00:00:00Z"), normalize("2100-01-01T00:00:00Z"))
    assert store.run_counts(*window)[0] == 1


def test_concurrent_upserts_in_one_group_create_once(store: Store) -> None:
    ops = [UpsertAgentRun("u1", ended(), ON_CREATE) for _ in range(5)]
    assert store.apply(ops) == ["created"] + ["duplicate"] * 4


def test_qc_reviews_are_added_and_listed_in_order(store: Store) -> None:
    store.apply([InsertRuns([row("r1")])])
    first, second = store.apply(
        [AddQc("r1", {"score": 4, "notes": "ok", "reviewer": "ana"}), AddQc("r1", {"score": 2})]
    )
    assert list(first) == list(QC_COLUMNS)
    assert (first["event_id"], first["score"], first["notes"], first["reviewer"]) == (
        "r1",
        4,
        "ok",
        "ana",
    )
    assert (second["notes"], second["reviewer"]) == (None, None)
    assert first["id"] < second["id"]
    assert store.list_qc("r1") == [first, second]


def test_qc_of_an_unknown_run(store: Store) -> None:
    assert store.apply([AddQc("nope", {"score": 3})]) == [None]
    assert store.list_qc("nope") is None


def test_qc_score_out_of_range_is_refused_by_the_store(store: Store) -> None:
    store.apply([InsertRuns([row("r1")])])
    [result] = store.apply([AddQc("r1", {"score": 6})])
    assert isinstance(result, Exception)
    assert store.list_qc("r1") == []


def test_ids_with_a_nul_character_are_never_found(store: Store) -> None:
    store.apply([InsertRuns([row("plain")])])
    for missing in ("a\x00b", "\x00", "plain\x00"):
        assert store.get_run(missing) is None
        assert store.get_run_json(missing) is None
        assert store.list_events(missing) is None
        assert store.list_qc(missing) is None
        update = UpdateRun(missing, {"status": "failure"})
        events = AppendEvents(
            missing,
            [
                {
                    "timestamp": normalize("2026-01-12T10:00:00Z"),
                    "level": "info",
                    "message": "m",
                    "data": None,
                }
            ],
        )
        assert store.apply([update, events]) == [None, None]
    assert store.get_run("plain") is not None

"""Field rules of request bodies and query filters, checked on the models directly."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from local_telemetry.schemas import (
    CANONICAL_STATUSES,
    EVENT_LEVELS,
    MAX_EVENT_MESSAGE_BYTES,
    MAX_INT64,
    MAX_JSON_DEPTH,
    NOT_NULLABLE_ON_UPDATE,
    RESOLUTIONS,
    STATUS_ALIASES,
    CommitAssociation,
    RunCreate,
    RunEventCreate,
    RunEventQuery,
    RunQuery,
    RunUpdate,
)
from local_telemetry.timestamps import parse_instant

COUNTERS = (
    "items_discovered",
    "items_succeeded",
    "items_failed",
    "items_skipped",
    "duration_ms",
    "api_retry_count",
)
IDENTIFIERS = ("event_id", "run_id", "agent_name", "job_type")


def create_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "evt-1",
        "run_id": "run-1",
        "agent_name": "agent",
        "job_type": "job",
        "start_time": "2026-01-12T10:30:00Z",
    }
    body.update(fields)
    return body


def error_fields(model: type[BaseModel], data: Any) -> set[str]:
    """Validate ``data``; return the names of the fields that failed (must fail)."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` objects deep (``{}`` is depth 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# ----- status -----


@pytest.mark.parametrize("status", CANONICAL_STATUSES)
def test_canonical_statuses_are_accepted_everywhere(status: str) -> None:
    assert RunCreate.model_validate(create_body(status=status)).status == status
    assert RunUpdate.model_validate({"status": status}).status == status
    assert RunQuery.model_validate({"status": status}).status == status


@pytest.mark.parametrize(("alias", "canonical"), sorted(STATUS_ALIASES.items()))
def test_status_aliases_are_normalized_on_create_and_in_queries(alias: str, canonical: str) -> None:
    assert RunCreate.model_validate(create_body(status=alias)).status == canonical
    assert RunQuery.model_validate({"status": alias}).status == canonical


@pytest.mark.parametrize("alias", sorted(STATUS_ALIASES))
def test_status_aliases_are_rejected_on_update(alias: str) -> None:
    with pytest.raises(ValidationError, match="Status must be one of") as info:
        RunUpdate.model_validate({"status": alias})
    assert "create only" in str(info.value)


def test_status_defaults_to_running_on_create() -> None:
    assert RunCreate.model_validate(create_body()).status == "running"


@pytest.mark.parametrize("status", ["bogus", "SUCCESS", "Success", " success", "", None, 1])
def test_unknown_status_is_rejected(status: Any) -> None:
    assert error_fields(RunCreate, create_body(status=status)) == {"status"}
    if status is not None:  # null means "no filter", and on PATCH the handler refuses it
        assert error_fields(RunQuery, {"status": status}) == {"status"}
        assert error_fields(RunUpdate, {"status": status}) == {"status"}


# ----- required fields and identifiers -----


@pytest.mark.parametrize("field", [*IDENTIFIERS, "start_time"])
def test_create_requires_the_five_identity_fields(field: str) -> None:
    body = create_body()
    del body[field]
    assert error_fields(RunCreate, body) == {field}


@pytest.mark.parametrize("field", IDENTIFIERS)
def test_identifiers_are_1_to_256_characters(field: str) -> None:
    assert RunCreate.model_validate(create_body(**{field: "x" * 256}))
    assert error_fields(RunCreate, create_body(**{field: ""})) == {field}
    assert error_fields(RunCreate, create_body(**{field: "x" * 257})) == {field}


@pytest.mark.parametrize("field", IDENTIFIERS)
@pytest.mark.parametrize("value", [5, 1.5, True, None, ["x"], {"x": 1}])
def test_identifiers_must_be_strings(field: str, value: Any) -> None:
    assert error_fields(RunCreate, create_body(**{field: value})) == {field}


@pytest.mark.parametrize(
    "field", [*IDENTIFIERS, "error_details", "git_repo", "product", "parent_run_id"]
)
def test_nul_characters_are_rejected_in_strings_on_create(field: str) -> None:
    assert error_fields(RunCreate, create_body(**{field: "a\x00b"})) == {field}


@pytest.mark.parametrize("field", ["error_summary", "output_summary", "git_commit_author"])
def test_nul_characters_are_rejected_in_strings_on_update(field: str) -> None:
    assert error_fields(RunUpdate, {field: "\x00"}) == {field}


def test_nul_characters_are_rejected_in_commit_author_and_query_filters() -> None:
    body = {"commit_hash": "abcdef1", "commit_source": "llm", "commit_author": "x\x00"}
    assert error_fields(CommitAssociation, body) == {"commit_author"}
    assert error_fields(RunQuery, {"agent_name": "a\x00"}) == {"agent_name"}


def test_non_ascii_text_is_kept_as_is() -> None:
    run = RunCreate.model_validate(create_body(agent_name="агент-🤖", error_details="é\u2028"))
    assert run.agent_name == "агент-🤖"
    assert run.error_details == "é\u2028"


# ----- counters -----


@pytest.mark.parametrize("field", COUNTERS)
def test_counters_accept_0_to_max_int64(field: str) -> None:
    assert getattr(RunCreate.model_validate(create_body(**{field: 0})), field) == 0
    assert getattr(RunUpdate.model_validate({field: MAX_INT64}), field) == MAX_INT64


@pytest.mark.parametrize("field", COUNTERS)
@pytest.mark.parametrize("value", [-1, MAX_INT64 + 1, 2**64, "5", 5.0, 5.5, True, False, [5]])
def test_counters_are_strict_non_negative_int64(field: str, value: Any) -> None:
    assert error_fields(RunCreate, create_body(**{field: value})) == {field}
    assert error_fields(RunUpdate, {field: value}) == {field}


@pytest.mark.parametrize("value", [1, 0, "true", "yes", None])
def test_api_posted_is_a_strict_boolean(value: Any) -> None:
    if value is None:
        assert RunUpdate.model_validate({"api_posted": None}).api_posted is None
        return
    assert error_fields(RunCreate, create_body(api_posted=value)) == {"api_posted"}


# ----- timestamps -----


@pytest.mark.parametrize(
    "field", ["start_time", "end_time", "created_at", "git_commit_timestamp", "api_posted_at"]
)
def test_timestamps_are_stored_as_utc(field: str) -> None:
    run = RunCreate.model_validate(create_body(**{field: "2026-01-12T12:30:00+02:00"}))
    assert getattr(run, field) == "2026-01-12T10:30:00.000000Z"


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-12T10:30:00",
        "2026-01-12 10:30:00",
        "2026-01-12",
        "10000-01-01T00:00:00Z",
        "garbage",
        "",
        "2026-01-12T10:30:00Z\x00",
        1736676600,
        1736676600.5,
        None,
    ],
)
def test_bad_timestamps_are_rejected(value: Any) -> None:
    assert error_fields(RunCreate, create_body(start_time=value)) == {"start_time"}
    assert error_fields(RunCreate, create_body(end_time=value or "x")) == {"end_time"}
    assert error_fields(RunQuery, {"created_after": value or "x"}) == {"created_after"}


def test_naive_timestamp_error_says_to_add_a_timezone() -> None:
    with pytest.raises(ValidationError, match="has no timezone"):
        RunCreate.model_validate(create_body(start_time="2026-01-12T10:30:00"))


# ----- git fields -----


def test_commit_hashes_are_lower_cased() -> None:
    run = RunCreate.model_validate(create_body(git_commit_hash="ABCDEF1234"))
    assert run.git_commit_hash == "abcdef1234"
    update = RunUpdate.model_validate({"git_commit_hash": "ABCDEF1"})
    assert update.git_commit_hash == "abcdef1"
    commit = CommitAssociation.model_validate({"commit_hash": "DEADBEEF", "commit_source": "ci"})
    assert commit.commit_hash == "deadbeef"


@pytest.mark.parametrize(
    "value", ["abcdef", "a" * 41, "abcdefg", "abc def1", "", "0x12345", 1234567, None]
)
def test_commit_hash_must_be_7_to_40_hex_digits(value: Any) -> None:
    body = {"commit_hash": value, "commit_source": "llm"}
    assert error_fields(CommitAssociation, body) == {"commit_hash"}
    if value is not None:
        assert error_fields(RunCreate, create_body(git_commit_hash=value)) == {"git_commit_hash"}


@pytest.mark.parametrize("source", ["manual", "llm", "ci"])
def test_commit_source_accepts_manual_llm_ci(source: str) -> None:
    body = {"commit_hash": "abcdef1", "commit_source": source}
    assert CommitAssociation.model_validate(body).commit_source == source


@pytest.mark.parametrize("source", ["LLM", "human", "", None])
def test_commit_source_rejects_anything_else(source: Any) -> None:
    body = {"commit_hash": "abcdef1", "commit_source": source}
    assert error_fields(CommitAssociation, body) == {"commit_source"}
    if source is not None:
        assert error_fields(RunUpdate, {"git_commit_source": source}) == {"git_commit_source"}


def test_commit_association_requires_hash_and_source() -> None:
    assert error_fields(CommitAssociation, {}) == {"commit_hash", "commit_source"}


def test_commit_association_changes_name_the_run_columns_it_sets() -> None:
    full = CommitAssociation.model_validate(
        {
            "commit_hash": "ABCDEF1",
            "commit_source": "llm",
            "commit_author": "Claude <noreply@anthropic.com>",
            "commit_timestamp": "2026-01-12T11:35:00+01:00",
        }
    )
    assert full.changes() == {
        "git_commit_hash": "abcdef1",
        "git_commit_source": "llm",
        "git_commit_author": "Claude <noreply@anthropic.com>",
        "git_commit_timestamp": "2026-01-12T10:35:00.000000Z",
    }
    minimal = CommitAssociation.model_validate({"commit_hash": "abcdef1", "commit_source": "ci"})
    assert minimal.changes() == {"git_commit_hash": "abcdef1", "git_commit_source": "ci"}


# ----- JSON fields -----


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
def test_json_fields_keep_nested_objects(field: str) -> None:
    value = {"tokens": 1500, "cost": 0.05, "tags": ["a", {"b": None}], "ok": True}
    assert getattr(RunCreate.model_validate(create_body(**{field: value})), field) == value


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
@pytest.mark.parametrize("value", [[1, 2], "{}", 5, True])
def test_json_fields_must_be_objects(field: str, value: Any) -> None:
    assert error_fields(RunCreate, create_body(**{field: value})) == {field}
    assert error_fields(RunUpdate, {field: value}) == {field}


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
def test_json_fields_may_nest_up_to_the_depth_limit(field: str) -> None:
    deep = nested(MAX_JSON_DEPTH)
    assert getattr(RunUpdate.model_validate({field: deep}), field) == deep
    with_lists: dict[str, Any] = {"a": [[[[{"b": [1]}]]]]}  # lists count as levels too
    assert getattr(RunUpdate.model_validate({field: with_lists}), field) == with_lists


@pytest.mark.parametrize("field", ["metrics_json", "context_json"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1000])
def test_json_fields_nested_past_the_limit_are_rejected(field: str, depth: int) -> None:
    # orjson cannot serialize past 254 levels: such a value must be refused up front.
    assert error_fields(RunCreate, create_body(**{field: nested(depth)})) == {field}
    assert error_fields(RunUpdate, {field: nested(depth)}) == {field}


def test_json_depth_counts_lists() -> None:
    value: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    assert error_fields(RunUpdate, {"metrics_json": {"a": value}}) == {"metrics_json"}


# ----- unknown fields -----


def test_create_ignores_unknown_fields() -> None:
    run = RunCreate.model_validate(create_body(not_a_field=1, api_posted_by="old-client"))
    assert "not_a_field" not in run.model_dump()
    assert "not_a_field" not in run.to_row()


def test_update_rejects_unknown_fields() -> None:
    assert error_fields(RunUpdate, {"status": "success", "not_a_field": 1}) == {"not_a_field"}


@pytest.mark.parametrize("field", ["event_id", "run_id", "agent_name", "created_at"])
def test_update_cannot_change_identity_fields(field: str) -> None:
    assert error_fields(RunUpdate, {field: "x"}) == {field}


def test_commit_association_ignores_unknown_fields() -> None:
    body = {"commit_hash": "abcdef1", "commit_source": "ci", "extra": 1}
    assert "extra" not in CommitAssociation.model_validate(body).model_dump()


# ----- what gets written -----


def test_update_changes_are_exactly_the_fields_sent() -> None:
    update = RunUpdate.model_validate(
        {"items_failed": 2, "status": "failure", "error_summary": None}
    )
    assert update.changes() == {"items_failed": 2, "status": "failure", "error_summary": None}


def test_update_changes_are_normalized_values() -> None:
    update = RunUpdate.model_validate(
        {"end_time": "2026-01-12T12:00:00+02:00", "git_commit_hash": "ABCDEF1"}
    )
    assert update.changes() == {
        "end_time": "2026-01-12T10:00:00.000000Z",
        "git_commit_hash": "abcdef1",
    }


def test_empty_update_has_no_changes() -> None:
    assert RunUpdate.model_validate({}).changes() == {}


def test_create_row_holds_only_fields_with_values() -> None:
    row = RunCreate.model_validate(create_body(items_discovered=0, product=None)).to_row()
    assert row == {
        "event_id": "evt-1",
        "run_id": "run-1",
        "agent_name": "agent",
        "job_type": "job",
        "start_time": "2026-01-12T10:30:00.000000Z",
        "status": "running",
        "items_discovered": 0,
    }


# ----- query filters -----


def test_query_defaults() -> None:
    query = RunQuery.model_validate({})
    assert (query.limit, query.offset) == (100, 0)
    assert query.status is None


def test_query_values_come_as_strings_from_the_query_string() -> None:
    query = RunQuery.model_validate({"limit": "50", "offset": "10"})
    assert (query.limit, query.offset) == (50, 10)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("limit", "0"),
        ("limit", "-1"),
        ("limit", "1001"),
        ("limit", "abc"),
        ("limit", ""),
        ("offset", "-5"),
        ("offset", str(MAX_INT64 + 1)),
        ("offset", "x"),
    ],
)
def test_query_paging_bounds(field: str, value: str) -> None:
    assert error_fields(RunQuery, {field: value}) == {field}


def test_query_limit_accepts_1_to_1000() -> None:
    assert RunQuery.model_validate({"limit": "1"}).limit == 1
    assert RunQuery.model_validate({"limit": "1000"}).limit == 1000


def test_query_timestamps_are_normalized_for_comparison() -> None:
    query = RunQuery.model_validate(
        {"created_after": "2026-01-12T12:00:00+02:00", "start_time_to": "2026-01-12T10:00:00Z"}
    )
    assert query.created_after == "2026-01-12T10:00:00.000000Z"
    assert query.start_time_to == "2026-01-12T10:00:00.000000Z"


# ----- agent outcome fields -----

OUTCOME_FIELDS = (
    "resolution",
    "input_kind",
    "self_corrected",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "sla_target_seconds",
)


def test_resolutions_are_the_runbooks() -> None:
    assert RESOLUTIONS == ("resolved", "escalated", "failed")


def test_outcome_fields_are_optional_and_nullable_on_update() -> None:
    run = RunCreate.model_validate(create_body())
    assert all(getattr(run, field) is None for field in OUTCOME_FIELDS)
    assert not set(OUTCOME_FIELDS) & NOT_NULLABLE_ON_UPDATE
    cleared = RunUpdate.model_validate(dict.fromkeys(OUTCOME_FIELDS)).changes()
    assert cleared == dict.fromkeys(OUTCOME_FIELDS)


@pytest.mark.parametrize(("sent", "kept"), [(0, 0.0), (3, 3.0), (0.05, 0.05), (-0.0, 0.0)])
def test_cost_is_kept_as_a_float(sent: float, kept: float) -> None:
    cost = RunCreate.model_validate(create_body(cost_usd=sent)).cost_usd
    assert isinstance(cost, float)
    assert (cost, str(cost)) == (kept, str(kept))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400, -1e-9])
def test_cost_must_be_finite_and_non_negative(value: Any) -> None:
    assert error_fields(RunCreate, create_body(cost_usd=value)) == {"cost_usd"}
    assert error_fields(RunUpdate, {"cost_usd": value}) == {"cost_usd"}


def test_outcome_integers_reach_max_int64() -> None:
    fields = {"tokens_input": MAX_INT64, "tokens_output": 0, "sla_target_seconds": MAX_INT64}
    run = RunCreate.model_validate(create_body(**fields))
    assert run.to_row().items() >= fields.items()


# ----- run events -----


def test_event_defaults() -> None:
    event = RunEventCreate.model_validate({"message": "m"})
    assert (event.level, event.data) == ("info", None)
    parse_instant(event.timestamp)  # the server's time, in the stored form
    assert event.timestamp.endswith("Z")
    assert event.to_row() == {
        "message": "m",
        "level": "info",
        "timestamp": event.timestamp,
        "data": None,
    }


@pytest.mark.parametrize("level", EVENT_LEVELS)
def test_event_levels_are_case_insensitive_and_stored_lower_case(level: str) -> None:
    for sent in (level, level.upper(), level.capitalize()):
        assert RunEventCreate.model_validate({"message": "m", "level": sent}).level == level


@pytest.mark.parametrize("level", ["warn", "fatal", "trace", " info", "", None, 20])
def test_unknown_event_levels_are_rejected(level: Any) -> None:
    assert error_fields(RunEventCreate, {"message": "m", "level": level}) == {"level"}


def test_event_message_is_limited_to_64_kib_of_utf8() -> None:
    assert MAX_EVENT_MESSAGE_BYTES == 65536
    for fits in ("x" * 65536, "é" * 32768, "😀" * 16384):
        assert RunEventCreate.model_validate({"message": fits}).message == fits
    for too_long in ("x" * 65537, "é" * 32769, "😀" * 16385, "😀" * 16384 + "x"):
        assert error_fields(RunEventCreate, {"message": too_long}) == {"message"}


def test_event_timestamp_is_normalized_and_needs_a_timezone() -> None:
    event = RunEventCreate.model_validate(
        {"message": "m", "timestamp": "2026-01-12T12:00:00+02:00"}
    )
    assert event.timestamp == "2026-01-12T10:00:00.000000Z"
    naive = {"message": "m", "timestamp": "2026-01-12T12:00:00"}
    assert error_fields(RunEventCreate, naive) == {"timestamp"}


def test_event_data_is_a_json_object() -> None:
    assert RunEventCreate.model_validate({"message": "m", "data": {"a": [1]}}).data == {"a": [1]}
    for bad in ([1], "x", 5, nested(MAX_JSON_DEPTH + 1)):
        assert error_fields(RunEventCreate, {"message": "m", "data": bad}) == {"data"}


def test_event_query_bounds() -> None:
    assert RunEventQuery.model_validate({}).model_dump() == {"limit": 1000, "after_id": 0}
    assert RunEventQuery.model_validate({"limit": "10000", "after_id": "5"}).limit == 10000
    for field, value in (("limit", "0"), ("limit", "10001"), ("after_id", "-1")):
        assert error_fields(RunEventQuery, {field: value}) == {field}

"""GET /api/v1/export/runs and /api/v1/export/kpis through the real server: every format
parsed back and compared field by field with GET /api/v1/runs and GET /api/v1/kpis."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import ServerProcess, new_run

RUN_FIELDS_INT = {
    "items_discovered",
    "items_succeeded",
    "items_failed",
    "items_skipped",
    "duration_ms",
    "api_retry_count",
    "tokens_input",
    "tokens_output",
    "sla_target_seconds",
}
JSON_FIELDS = {"metrics_json", "context_json"}
BOOL_FIELDS = {"api_posted", "self_corrected"}
TEXTS = [
    "plain",
    'comma, and "quotes"',
    "line one\nline two\r\nline three",
    "unicode: héllo 世界 🚀",
    "",
]


def seed(api: httpx.Client, agent: str, count: int = 30) -> list[dict[str, Any]]:
    bodies = []
    for i in range(count):
        body = new_run(
            agent_name=agent,
            job_type=f"job-{i % 3}",
            status=["success", "failure", "running"][i % 3],
            start_time=f"2026-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            created_at=f"2026-03-01T00:00:{i // 2:02d}Z",  # pairs share created_at
            input_summary=TEXTS[i % len(TEXTS)],
            error_summary=None if i % 2 else TEXTS[(i + 1) % len(TEXTS)],
            metrics_json={"n": i, "text": TEXTS[i % len(TEXTS)], "nested": [1, None]}
            if i % 4
            else None,
            context_json={"k": 'v,"x"\n'} if i % 5 == 0 else None,
            git_repo="https://github.com/example/repo" if i % 2 else None,
            git_commit_hash=f"{i:040x}" if i % 2 else None,
            items_discovered=i,
            duration_ms=i * 1000 if i % 3 else None,
            self_corrected=[True, False, None][i % 3],
            cost_usd=[0.1 + 0.2, None, 3.0][i % 3],
            tokens_input=i * 10 if i % 2 else None,
        )
        bodies.append(body)
    reply = api.post("/api/v1/runs/batch", json=bodies)
    assert reply.status_code == 200, reply.text
    assert reply.json()["inserted"] == count
    return bodies


def listed(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    reply = api.get("/api/v1/runs", params={"limit": 1000, **params})
    assert reply.status_code == 200, reply.text
    runs: list[dict[str, Any]] = reply.json()
    return runs


def export(api: httpx.Client, path: str, params: Any) -> httpx.Response:
    reply = api.get(f"/api/v1/export/{path}", params=params)
    assert reply.status_code == 200, reply.text
    return reply


def parse_csv(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(content.decode(), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def csv_value(column: str, cell: str) -> Any:
    """A CSV cell back as the API's JSON value (the export's documented encoding)."""
    if column in JSON_FIELDS or column == "cost_usd":
        return None if cell == "" else json.loads(cell)
    if column in RUN_FIELDS_INT:
        return None if cell == "" else int(cell)
    if column in BOOL_FIELDS:
        return {"": None, "true": True, "false": False}[cell]
    return None if cell == "" else cell


def parquet_rows(content: bytes) -> tuple[pa.Schema, list[dict[str, Any]]]:
    table = pq.read_table(pa.BufferReader(content))
    return table.schema, table.to_pylist()


@pytest.fixture
def agent() -> str:
    return f"export-{uuid.uuid4().hex[:10]}"


FILTERS: list[Callable[[str], dict[str, str]]] = [
    lambda agent: {"agent_name": agent},
    lambda agent: {"agent_name": agent, "status": "failure"},
    lambda agent: {"agent_name": agent, "job_type": "job-1"},
    lambda agent: {
        "agent_name": agent,
        "start_time_from": "2026-03-05T00:00:00Z",
        "start_time_to": "2026-03-20T00:00:00+00:00",
        "created_before": "2026-03-01T00:00:12Z",
    },
]


@pytest.mark.parametrize("make_filter", FILTERS)
def test_jsonl_lines_equal_the_runs_endpoint(
    api: httpx.Client, agent: str, make_filter: Callable[[str], dict[str, str]]
) -> None:
    seed(api, agent)
    params = make_filter(agent)
    expected = listed(api, **params)
    assert expected
    reply = export(api, "runs", {**params, "format": "jsonl"})
    assert reply.headers["content-type"] == "application/x-ndjson"
    assert 'filename="runs.jsonl"' in reply.headers["content-disposition"]
    lines = reply.content.split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == expected
    # byte for byte the single-run endpoint's body
    first = api.get(f"/api/v1/runs/{expected[0]['event_id']}")
    assert lines[0] == first.content


@pytest.mark.parametrize("make_filter", FILTERS)
def test_csv_matches_the_runs_endpoint_field_by_field(
    api: httpx.Client, agent: str, make_filter: Callable[[str], dict[str, str]]
) -> None:
    seed(api, agent)
    params = make_filter(agent)
    expected = listed(api, **params)
    reply = export(api, "runs", params)  # csv is the default
    assert reply.headers["content-type"].startswith("text/csv")
    assert 'filename="runs.csv"' in reply.headers["content-disposition"]
    header, rows = parse_csv(reply.content)
    assert header == list(expected[0])  # the run fields, then commit_url and repo_url
    assert header[-2:] == ["commit_url", "repo_url"]
    assert len(rows) == len(expected)
    for row, run in zip(rows, expected, strict=True):
        for column in header:
            assert csv_value(column, row[column]) == (run[column] if run[column] != "" else None)


@pytest.mark.parametrize("make_filter", FILTERS)
def test_parquet_is_typed_and_matches_the_runs_endpoint(
    api: httpx.Client, agent: str, make_filter: Callable[[str], dict[str, str]]
) -> None:
    seed(api, agent)
    params = make_filter(agent)
    expected = listed(api, **params)
    reply = export(api, "runs", {**params, "format": "parquet"})
    assert reply.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="runs.parquet"' in reply.headers["content-disposition"]
    schema, rows = parquet_rows(reply.content)
    assert schema.names == list(expected[0])
    assert schema.field("items_discovered").type == pa.int64()
    assert schema.field("cost_usd").type == pa.float64()
    assert schema.field("api_posted").type == pa.bool_()
    assert schema.field("self_corrected").type == pa.bool_()
    assert schema.field("metrics_json").type == pa.string()
    assert schema.field("agent_name").type == pa.string()
    assert len(rows) == len(expected)
    for row, run in zip(rows, expected, strict=True):
        for column, value in run.items():
            got = row[column]
            if column in JSON_FIELDS and got is not None:
                got = json.loads(got)
            assert got == value, column


def test_text_with_commas_quotes_newlines_and_unicode_survives_csv(
    api: httpx.Client, agent: str
) -> None:
    seed(api, agent, count=len(TEXTS))
    _, rows = parse_csv(export(api, "runs", {"agent_name": agent}).content)
    assert {row["input_summary"] for row in rows} == set(TEXTS)


def test_empty_export_has_header_or_schema_only(api: httpx.Client, agent: str) -> None:
    header, rows = parse_csv(export(api, "runs", {"agent_name": agent}).content)
    assert rows == []
    assert header[0] == "event_id"
    assert export(api, "runs", {"agent_name": agent, "format": "jsonl"}).content == b""
    schema, prows = parquet_rows(
        export(api, "runs", {"agent_name": agent, "format": "parquet"}).content
    )
    assert prows == []
    assert schema.names[0] == "event_id"


def test_limit_and_offset_are_ignored(api: httpx.Client, agent: str) -> None:
    seed(api, agent, count=12)
    reply = export(
        api, "runs", {"agent_name": agent, "limit": 5000, "offset": 3, "format": "jsonl"}
    )
    assert len(reply.content.splitlines()) == 12


@pytest.mark.parametrize(
    "params",
    [
        {"format": "xlsx"},
        {"format": ""},
        {"status": "not-a-status"},
        {"created_before": "yesterday"},
        {"start_time_from": "2026-01-01T00:00:00"},  # no timezone
    ],
)
def test_bad_parameters_are_422(api: httpx.Client, params: dict[str, str]) -> None:
    reply = api.get("/api/v1/export/runs", params=params)
    assert reply.status_code == 422, reply.text
    listing = api.get("/api/v1/runs", params=params)
    if "format" not in params:  # the same filters fail the same way
        assert listing.status_code == 422


@pytest.mark.parametrize(
    "params", [{"format": "csv!"}, {"group_by": "month"}, {"tz": "Mars/Olympus"}]
)
def test_bad_kpi_export_parameters_are_422(api: httpx.Client, params: dict[str, str]) -> None:
    assert api.get("/api/v1/export/kpis", params=params).status_code == 422


def test_large_export_returns_every_row_once_in_order(start_server: Any) -> None:
    """12,000 runs, many sharing a created_at: more than two store chunks, so the keyset
    pagination must continue across chunk boundaries without loss or repetition."""
    server: ServerProcess = start_server()
    agent = "bulk-agent"
    with httpx.Client(base_url=server.url, timeout=120) as client:
        expected_ids = []
        for batch in range(2):
            bodies = [
                new_run(
                    agent_name=agent,
                    created_at=f"2026-02-01T00:{(batch * 6000 + i) // 600:02d}:00Z",
                    input_summary=f"#{batch * 6000 + i}",
                )
                for i in range(6000)
            ]
            reply = client.post("/api/v1/runs/batch", json=bodies)
            assert reply.json()["inserted"] == 6000, reply.text
            expected_ids.extend(b["event_id"] for b in bodies)
        paged: list[str] = []
        for offset in range(0, 12_000, 1000):
            page = client.get("/api/v1/runs", params={"limit": 1000, "offset": offset})
            paged.extend(r["event_id"] for r in page.json())
        assert sorted(paged) == sorted(expected_ids)

        jsonl = client.get("/api/v1/export/runs", params={"format": "jsonl"})
        exported = [json.loads(line)["event_id"] for line in jsonl.content.splitlines()]
        assert exported == paged
        assert len(set(exported)) == 12_000

        _, rows = parse_csv(client.get("/api/v1/export/runs").content)
        assert [r["event_id"] for r in rows] == paged

        reply = client.get("/api/v1/export/runs", params={"format": "parquet"})
        table = pq.read_table(pa.BufferReader(reply.content))
        assert table.column("event_id").to_pylist() == paged
        assert pq.ParquetFile(pa.BufferReader(reply.content)).num_row_groups >= 3


def _kpi_expected(api: httpx.Client, params: Any) -> tuple[list[str], list[dict[str, Any]]]:
    reply = api.get("/api/v1/kpis", params=params)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["group_by"], body["groups"]


@pytest.mark.parametrize(
    "group_by", [[], ["job_type"], ["job_type", "day"], ["agent_name", "week"]]
)
def test_kpi_export_matches_the_kpis_endpoint(
    api: httpx.Client, agent: str, group_by: list[str]
) -> None:
    seed(api, agent)
    params: list[tuple[str, str]] = [("agent_name", agent), *(("group_by", g) for g in group_by)]
    keys, groups = _kpi_expected(api, params)
    assert groups
    statuses = sorted({s for g in groups for s in g["status_counts"]})

    def flat(group: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in group.items() if k != "status_counts"}
        row.update({f"status_{s}": group["status_counts"].get(s, 0) for s in statuses})
        return row

    expected = [flat(g) for g in groups]

    jsonl = export(api, "kpis", [*params, ("format", "jsonl")])
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert 'filename="kpis.jsonl"' in jsonl.headers["content-disposition"]
    assert [json.loads(line) for line in jsonl.content.splitlines()] == expected

    header, rows = parse_csv(export(api, "kpis", params).content)
    assert header == list(expected[0])
    assert header[: len(keys)] == keys
    for row, want in zip(rows, expected, strict=True):
        for column, value in want.items():
            cell = row[column]
            if column in keys:
                assert cell == value
            else:
                assert (None if cell == "" else json.loads(cell)) == value, column

    schema, prows = parquet_rows(export(api, "kpis", [*params, ("format", "parquet")]).content)
    assert schema.names == header
    assert schema.field("total_runs").type == pa.int64()
    assert schema.field("failure_rate").type == pa.float64()
    assert prows == expected

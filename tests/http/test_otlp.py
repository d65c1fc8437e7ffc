"""POST /v1/traces: spans made by the real OpenTelemetry SDK, exported to a real server
(protobuf by the SDK's OTLP/HTTP exporter, JSON per the OTLP/JSON mapping), mapped onto
runs, their events and token counts."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from local_telemetry.otlp import span_event_id
from support import ServerProcess, StartServer, query

AUTH_TOKEN = "otlp-admin-token-0123456789abcdef"


class Trace:
    """One agent run made with the SDK: an ``invoke_agent`` root span, a ``chat`` child
    and an ``execute_tool`` grandchild, each reporting tokens."""

    def __init__(self, *, failing: bool = False) -> None:
        self.agent = f"otel-agent-{uuid.uuid4().hex[:10]}"
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "otel-service"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span(
            f"invoke_agent {self.agent}",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.agent,
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 1,
                "gen_ai.usage.output_tokens": 2,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as root:
            with (
                tracer.start_as_current_span(
                    "chat gpt-4o",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 20,
                    },
                ),
                tracer.start_as_current_span(
                    "execute_tool search",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.usage.input_tokens": 30,
                        "gen_ai.usage.output_tokens": 4,
                    },
                ) as tool,
            ):
                if failing:
                    tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
            if failing:
                root.set_status(Status(StatusCode.ERROR, "agent gave up"))
        provider.shutdown()
        finished = {span.name: span for span in memory.get_finished_spans()}
        self.root = finished[f"invoke_agent {self.agent}"]
        self.children = [finished["chat gpt-4o"], finished["execute_tool search"]]

    @property
    def spans(self) -> list[ReadableSpan]:
        return [*self.children, self.root]

    @property
    def trace_id(self) -> str:
        assert self.root.context is not None
        return format(self.root.context.trace_id, "032x")

    @property
    def event_id(self) -> str:
        assert self.root.context is not None
        return span_event_id(self.trace_id, format(self.root.context.span_id, "016x"))


def export(server: ServerProcess, spans: Sequence[ReadableSpan], **options: Any) -> Any:
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=30, **options)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The spans in OTLP/JSON: the protobuf JSON mapping with ids as hex, not base64."""
    data: dict[str, Any] = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return data


def run_of(api: httpx.Client, trace: Trace) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{trace.event_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def events_of(api: httpx.Client, trace: Trace) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/runs/{trace.event_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def assert_complete_run(api: httpx.Client, trace: Trace) -> dict[str, Any]:
    """The run holds the root span's fields, tokens of all three spans, two events."""
    run = run_of(api, trace)
    assert run["run_id"] == trace.trace_id
    assert run["agent_name"] == trace.agent
    assert run["job_type"] == "invoke_agent"
    assert run["tokens_input"] == 1 + 100 + 30
    assert run["tokens_output"] == 2 + 20 + 4
    assert run["context_json"]["model"] == "gpt-4o"
    assert run["context_json"]["provider"] == "openai"
    assert run["end_time"] is not None
    assert run["duration_ms"] >= 0
    messages = sorted(event["message"] for event in events_of(api, trace))
    assert messages == ["chat gpt-4o", "execute_tool search"]
    return run


def test_protobuf_export_by_the_sdk_becomes_a_run(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    assert export(shared_server, trace.spans) == SpanExportResult.SUCCESS
    run = assert_complete_run(api, trace)
    assert run["status"] == "success"
    assert run["error_summary"] is None
    assert run["start_time"] <= run["end_time"]


def test_protobuf_answer_is_an_export_response(shared_server: ServerProcess):
    trace = Trace()
    body = encode_spans(trace.spans).SerializeToString()
    response = httpx.post(
        f"{shared_server.url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")


def test_json_export_with_hex_ids(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    response = api.post("/v1/traces", json=otlp_json(trace.spans))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert_complete_run(api, trace)


def test_gzip_export(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    result = export(shared_server, trace.spans, compression=Compression.Gzip)
    assert result == SpanExportResult.SUCCESS
    assert_complete_run(api, trace)


def test_gzip_bomb_is_refused_without_inflating_it(start_server: StartServer):
    server = start_server(TELEMETRY_MAX_BATCH_BODY_BYTES=str(64 * 1024))
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MiB inflated, ~8 KiB sent
    response = httpx.post(
        f"{server.url}/v1/traces",
        content=bomb,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    bad = httpx.post(
        f"{server.url}/v1/traces",
        content=b"\x1f\x8b not really gzip",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert bad.status_code == 400, bad.text


def test_error_span_makes_a_failed_run(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace(failing=True)
    assert export(shared_server, trace.spans) == SpanExportResult.SUCCESS
    run = run_of(api, trace)
    assert run["status"] == "failure"
    assert run["error_summary"] == "agent gave up"
    levels = {event["message"]: event["level"] for event in events_of(api, trace)}
    assert levels == {"chat gpt-4o": "info", "execute_tool search": "error"}


def test_children_exported_before_their_root(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    assert export(shared_server, trace.children) == SpanExportResult.SUCCESS
    assert api.get(f"/api/v1/runs/{trace.event_id}").status_code == 404  # not yet
    assert export(shared_server, [trace.root]) == SpanExportResult.SUCCESS
    assert_complete_run(api, trace)
    sql = "SELECT COUNT(*) FROM otlp_spans WHERE trace_id = ? AND run_event_id IS NULL"
    assert query(shared_server, sql, (trace.trace_id,)) == [(0,)]  # none left pending


def test_children_exported_after_their_root(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    assert export(shared_server, [trace.root]) == SpanExportResult.SUCCESS
    first = run_of(api, trace)
    assert (first["tokens_input"], first["tokens_output"]) == (1, 2)
    assert export(shared_server, [trace.children[1]]) == SpanExportResult.SUCCESS
    assert export(shared_server, [trace.children[0]]) == SpanExportResult.SUCCESS
    assert_complete_run(api, trace)


def test_resent_exports_change_nothing(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    assert export(shared_server, trace.children) == SpanExportResult.SUCCESS
    for _ in range(2):
        assert export(shared_server, trace.spans) == SpanExportResult.SUCCESS
        assert export(shared_server, trace.children) == SpanExportResult.SUCCESS
        assert_complete_run(api, trace)  # tokens and events counted once
    runs = api.get("/api/v1/runs", params={"agent_name": trace.agent}).json()
    assert [run["event_id"] for run in runs] == [trace.event_id]


def test_partial_success_names_the_rejected_span(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    data = otlp_json(trace.spans)
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    broken = json.loads(json.dumps(spans[0]))
    broken["spanId"] = "not-hex"
    spans.append(broken)
    response = api.post("/v1/traces", json=data)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "span_id" in partial["errorMessage"]
    assert_complete_run(api, trace)  # the valid spans are stored


def test_undecodable_bodies_are_400_with_an_otlp_status(api: httpx.Client):
    from google.rpc.status_pb2 import Status  # the exporter's own dependency decodes it

    garbage = api.post(
        "/v1/traces",
        content=b"\xff\xff\xff\xff not protobuf",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert garbage.status_code == 400, garbage.text
    assert garbage.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(garbage.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message
    for body in (b"{not json", b"[1, 2]", b'{"resourceSpans": 7}'):
        response = api.post(
            "/v1/traces", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == 3
        assert response.json()["message"]


def test_other_content_types_are_415(api: httpx.Client):
    response = api.post("/v1/traces", content=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415, response.text
    brotli = api.post(
        "/v1/traces",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "br"},
    )
    assert brotli.status_code == 415, brotli.text


def test_export_needs_the_ingest_scope(start_server: StartServer):
    server = start_server(TELEMETRY_API_AUTH_ENABLED="true", TELEMETRY_API_AUTH_TOKEN=AUTH_TOKEN)
    admin = {"Authorization": f"Bearer {AUTH_TOKEN}"}
    keys = {}
    for scope in ("read", "ingest"):
        created = httpx.post(
            f"{server.url}/api/v1/keys",
            json={"name": f"otlp-{scope}", "scope": scope},
            headers=admin,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        keys[scope] = created.json()["key"]
    trace = Trace()
    body = encode_spans(trace.spans).SerializeToString()
    url = f"{server.url}/v1/traces"
    proto = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(url, content=body, headers=proto, timeout=30).status_code == 401
    read = {**proto, "Authorization": f"Bearer {keys['read']}"}
    assert httpx.post(url, content=body, headers=read, timeout=30).status_code == 403
    ingest = {"Authorization": f"Bearer {keys['ingest']}"}
    assert export(server, trace.spans, headers=ingest) == SpanExportResult.SUCCESS
    with httpx.Client(base_url=server.url, headers=admin, timeout=30) as client:
        assert_complete_run(client, trace)


def test_exports_are_rate_limited_like_the_api(start_server: StartServer):
    server = start_server(TELEMETRY_RATE_LIMIT_ENABLED="true", TELEMETRY_RATE_LIMIT_RPM="2")
    body = encode_spans(Trace().spans).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    answers = [
        httpx.post(f"{server.url}/v1/traces", content=body, headers=headers, timeout=30)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_pending_spans_past_the_cap_are_rejected(start_server: StartServer):
    server = start_server(TELEMETRY_OTLP_MAX_PENDING_SPANS="1")
    trace = Trace()
    response = httpx.post(
        f"{server.url}/v1/traces", json=otlp_json(trace.children), timeout=30
    )  # two spans, no root yet: room for one
    assert response.status_code == 200, response.text
    assert int(response.json()["partialSuccess"]["rejectedSpans"]) == 1
    waiting = query(server, "SELECT COUNT(*) FROM otlp_spans WHERE run_event_id IS NULL")
    assert waiting == [(1,)]


def test_hostile_values_never_answer_5xx(api: httpx.Client, shared_server: ServerProcess):
    trace = Trace()
    data = otlp_json(trace.spans)
    for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["name"] = "nul\u0000name"
        for attribute in span["attributes"]:
            if attribute["key"] == "gen_ai.usage.input_tokens":
                attribute["value"] = {"intValue": str(2**63 - 1)}  # sums past 64 bits
    response = api.post("/v1/traces", json=data)
    assert response.status_code in (200, 400), response.text

    named = Trace()
    data = otlp_json(named.children)
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "nul\u0000name"
    assert api.post("/v1/traces", json=data).status_code == 200
    assert export(shared_server, [named.root]) == SpanExportResult.SUCCESS
    messages = {event["message"] for event in events_of(api, named)}
    assert "nul\ufffdname" in messages

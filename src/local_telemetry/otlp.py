"""OTLP/HTTP trace exports mapped onto runs (pure: no I/O, no storage).

``decode_request`` turns a request body (``application/x-protobuf`` or
``application/json``) into an ``ExportTraceServiceRequest``; ``map_spans`` turns its
spans into :class:`~local_telemetry.storage.base.OtlpSpan` records the store applies
(``IngestOtlpSpans``), following the OpenTelemetry GenAI semantic conventions:

* a span whose ``gen_ai.operation.name`` equals the root operation (``invoke_agent`` by
  default) becomes a run: ``event_id`` is a UUID-5 of trace id + span id (a re-sent
  export creates nothing new), ``run_id`` the trace id (hex);
* every other span is a child: its ``gen_ai.usage.*_tokens`` are added to the run it
  belongs to and it becomes one event of that run (the store finds the run).

Spans that cannot be stored (bad ids, no start time, fields the run rules refuse) are
rejected one by one and reported in the response's ``partial_success``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from local_telemetry.schemas import RunCreate
from local_telemetry.storage.base import OtlpSpan
from local_telemetry.timestamps import to_stored

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

OTLP_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-5c7d-9e0f-1a2b3c4d5e6f")
"""Namespace of the UUID-5 ``event_id`` of a run made from a span (never change it:
re-sent exports must map to the same ids)."""

OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
SERVICE_NAME = "service.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
MODEL = "gen_ai.request.model"
PROVIDERS = ("gen_ai.provider.name", "gen_ai.system")  # the newer name first

MAX_EVENT_ATTRIBUTES = 32
"""Attributes of a child span kept in its event's ``data`` (the first ones)."""
MAX_ATTRIBUTE_CHARS = 512
"""Longest attribute text kept in an event's ``data`` (longer ones are cut)."""
MAX_MESSAGE_CHARS = 1024
MAX_REJECT_REASONS = 5
"""Reasons listed in ``partial_success.error_message`` (the count covers all)."""
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class OtlpDecodeError(ValueError):
    """The body is not an OTLP trace export in the declared encoding (answered 400)."""


@dataclass
class MappedExport:
    """The spans of one export to store, and those rejected with why."""

    spans: list[OtlpSpan] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def media_type(content_type: str | None) -> str | None:
    """``PROTOBUF`` or ``JSON`` for a request's Content-Type, ``None`` for others."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media if media in (PROTOBUF, JSON) else None


def decode_request(body: bytes, media: str) -> ExportTraceServiceRequest:
    """The export in ``body`` (``media``: ``PROTOBUF`` or ``JSON``)."""
    request = ExportTraceServiceRequest()
    if media == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpDecodeError(f"Undecodable protobuf body: {exc}") from None
        return request
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"Invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise OtlpDecodeError("Body must be a JSON object (ExportTraceServiceRequest)")
    try:
        _hex_ids_to_base64(data)
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"Not an OTLP trace export: {exc}") from None
    return request


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids as hex, the protobuf JSON mapping reads bytes
    as base64: convert them in place (an id that is not hex becomes empty, so that span
    is rejected rather than the whole export)."""
    for span in _json_spans(data):
        for holder in (span, *_dicts(span.get("links"))):
            for key in _ID_FIELDS:
                value = holder.get(key)
                if isinstance(value, str):
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        raw = b""
                    holder[key] = base64.b64encode(raw).decode()


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _json_spans(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in _dicts(data.get("resourceSpans", data.get("resource_spans"))):
        scopes = resource_spans.get("scopeSpans", resource_spans.get("scope_spans"))
        for scope_spans in _dicts(scopes):
            yield from _dicts(scope_spans.get("spans"))


def encode_response(rejected: list[str], media: str) -> bytes:
    """The ``ExportTraceServiceResponse`` body in the request's encoding."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
        shown = "; ".join(rejected[:MAX_REJECT_REASONS])
        more = len(rejected) - MAX_REJECT_REASONS
        response.partial_success.error_message = shown + (f"; and {more} more" if more > 0 else "")
    if media == PROTOBUF:
        return bytes(response.SerializeToString())
    return str(json_format.MessageToJson(response, indent=None)).encode()


GRPC_INVALID_ARGUMENT = 3
"""The ``google.rpc.Code`` of a body the server cannot decode (OTLP: HTTP 400)."""


def encode_status(code: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` in the request's encoding: the body OTLP/HTTP asks for
    with a 4xx. Written by hand (two scalar fields: ``code`` = 1, ``message`` = 2) so the
    server needs no googleapis package; the JSON form keeps the API's ``detail`` too."""
    if media == PROTOBUF:
        text = message.encode()
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return json.dumps({"code": code, "message": message, "detail": message}).encode()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def span_event_id(trace_hex: str, span_hex: str) -> str:
    """The ``event_id`` of the run made from this span (same ids, same event_id)."""
    return str(uuid.uuid5(OTLP_NAMESPACE, trace_hex + span_hex))


def _value(value: AnyValue, depth: int = 0) -> Any:
    """An attribute value as JSON (nesting bounded: deeper levels become text)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        if depth > 3:
            return str(value.array_value)[:MAX_ATTRIBUTE_CHARS]
        return [_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        if depth > 3:
            return str(value.kvlist_value)[:MAX_ATTRIBUTE_CHARS]
        return {kv.key: _value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    kvs: list[KeyValue] = list(pairs)
    return {kv.key: _value(kv.value) for kv in kvs}


def _stamp(nanos: int) -> str:
    """Nanoseconds since the epoch in the stored UTC form (microsecond precision)."""
    return to_stored(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000))


def _count(attributes: dict[str, Any], key: str) -> int:
    """A token count attribute; 0 when absent or not a non-negative integer."""
    value = attributes.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, NULs replaced (PostgreSQL text refuses
    them; a span name or attribute may well hold one)."""
    cut = value if len(value) <= limit else value[:limit] + "…"
    return cut.replace("\x00", "\ufffd")


def _short(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value, MAX_ATTRIBUTE_CHARS)
    if isinstance(value, list | dict):
        text = orjson.dumps(value).decode()
        return value if len(text) <= MAX_ATTRIBUTE_CHARS else _text(text, MAX_ATTRIBUTE_CHARS)
    return value


@dataclass(frozen=True)
class MappingRules:
    """Which span is a run and where its job type comes from (settings)."""

    root_operation: str = "invoke_agent"
    job_type_attribute: str = OPERATION


def map_spans(request: ExportTraceServiceRequest, rules: MappingRules) -> MappedExport:
    """The export's spans as store records: runs first (earliest start first, so a
    parent run precedes the runs nested in it), then the other spans (earliest first,
    so a parent is stored before its children)."""
    mapped = MappedExport()
    runs: list[tuple[int, OtlpSpan]] = []
    children: list[tuple[int, OtlpSpan]] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    record = _map_span(span, resource, rules)
                except ValueError as exc:
                    mapped.rejected.append(f"span {span.span_id.hex() or '?'}: {exc}")
                    continue
                (runs if record.run is not None else children).append(
                    (span.start_time_unix_nano, record)
                )
    mapped.spans = [r for _, r in sorted(runs, key=lambda p: p[0])]
    mapped.spans += [c for _, c in sorted(children, key=lambda p: p[0])]
    return mapped


def _map_span(span: Span, resource: dict[str, Any], rules: MappingRules) -> OtlpSpan:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise ValueError("trace_id must be 16 bytes, not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise ValueError("span_id must be 8 bytes, not all zero")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise ValueError("parent_span_id must be 8 bytes")
    if span.start_time_unix_nano <= 0:
        raise ValueError("start_time_unix_nano is missing")
    trace_hex, span_hex = span.trace_id.hex(), span.span_id.hex()
    parent_hex = span.parent_span_id.hex() if any(span.parent_span_id) else None
    attributes = _attributes(span.attributes)
    tokens_in, tokens_out = _count(attributes, INPUT_TOKENS), _count(attributes, OUTPUT_TOKENS)
    failed = span.status.code == Status.STATUS_CODE_ERROR
    ended = span.end_time_unix_nano > 0
    if attributes.get(OPERATION) == rules.root_operation:
        run = _run_row(span, trace_hex, span_hex, attributes, resource, rules)
        return OtlpSpan(trace_hex, span_hex, parent_hex, tokens_in, tokens_out, run=run)
    data: dict[str, Any] = {"span_id": span_hex, "kind": Span.SpanKind.Name(span.kind)}
    if ended and span.end_time_unix_nano >= span.start_time_unix_nano:
        data["duration_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000
    if span.status.message:
        data["status_message"] = _text(span.status.message, MAX_MESSAGE_CHARS)
    kept = list(attributes.items())[:MAX_EVENT_ATTRIBUTES]
    data["attributes"] = {_text(key, MAX_ATTRIBUTE_CHARS): _short(v) for key, v in kept}
    event = {
        "timestamp": _stamp(span.start_time_unix_nano),
        "level": "error" if failed else "info",
        "message": _text(span.name or "(unnamed span)", MAX_MESSAGE_CHARS),
        "data": data,
    }
    return OtlpSpan(trace_hex, span_hex, parent_hex, tokens_in, tokens_out, event=event)


def _run_row(
    span: Span,
    trace_hex: str,
    span_hex: str,
    attributes: dict[str, Any],
    resource: dict[str, Any],
    rules: MappingRules,
) -> dict[str, Any]:
    """The run row of a root span, checked by the same rules as ``POST /api/v1/runs``."""
    agent_name = attributes.get(AGENT_NAME) or resource.get(SERVICE_NAME)
    job_type = attributes.get(rules.job_type_attribute) or rules.root_operation
    fields: dict[str, Any] = {
        "event_id": span_event_id(trace_hex, span_hex),
        "run_id": trace_hex,
        "agent_name": agent_name if isinstance(agent_name, str) else None,
        "job_type": str(job_type),
        "start_time": _stamp(span.start_time_unix_nano),
        "status": "running",
    }
    ends = span.end_time_unix_nano
    if ends > 0:
        if ends < span.start_time_unix_nano:
            raise ValueError("end_time_unix_nano is before start_time_unix_nano")
        fields["end_time"] = _stamp(ends)
        fields["duration_ms"] = (ends - span.start_time_unix_nano) // 1_000_000
        fields["status"] = "success"
    if span.status.code == Status.STATUS_CODE_ERROR:
        fields["status"] = "failure"
        fields["error_summary"] = span.status.message or "span status ERROR"
    context: dict[str, Any] = {"otel_trace_id": trace_hex, "otel_span_id": span_hex}
    if span.name:
        context["otel_span_name"] = _text(span.name, MAX_MESSAGE_CHARS)
    if attributes.get(MODEL) is not None:
        context["model"] = _short(attributes[MODEL])
    provider = next((attributes[k] for k in PROVIDERS if attributes.get(k) is not None), None)
    if provider is not None:
        context["provider"] = _short(provider)
    fields["context_json"] = context
    for column, key in (("tokens_input", INPUT_TOKENS), ("tokens_output", OUTPUT_TOKENS)):
        if key in attributes:
            fields[column] = attributes[key]
    try:
        return RunCreate.model_validate(fields).to_row()
    except ValidationError as exc:
        problems = ", ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ValueError(f"not a valid run ({problems})") from None

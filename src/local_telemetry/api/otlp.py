"""``POST /v1/traces``: OTLP/HTTP trace export (protobuf or JSON, optionally gzip).

The body is read with the batch size cap (``TELEMETRY_MAX_BATCH_BODY_BYTES``, 413 past
it), and a gzip body is inflated with the same cap on its decompressed size, so a small
zip bomb is refused after at most that many bytes. Decoding and mapping
(``local_telemetry.otlp``) run on a worker thread; the spans go to the writer as one
``IngestOtlpSpans``. The answer is an ``ExportTraceServiceResponse`` in the request's
encoding, with ``partial_success`` naming the spans that were rejected.
"""

from __future__ import annotations

import zlib

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from local_telemetry import otlp
from local_telemetry.api.deps import AppState, state
from local_telemetry.api.http import ApiError, read_body
from local_telemetry.api.runs import submit_write
from local_telemetry.storage.base import IngestOtlpSpans, OtlpIngestResult

PATH = "/v1/traces"


def gunzip(body: bytes, limit: int) -> bytes:
    """``body`` (one or more gzip members) inflated; 413 as soon as the output would
    pass ``limit`` bytes (never inflating more), 400 when it is not valid gzip."""
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise ApiError(400, f"Invalid gzip body: {exc}") from None
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise ApiError(413, f"Decompressed body larger than {limit} bytes")
        if not inflater.eof:
            raise ApiError(400, "Invalid gzip body: truncated")
        out.append(chunk)
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)


def _decode(body: bytes, media: str, rules: otlp.MappingRules) -> otlp.MappedExport:
    """Decode and map on a worker thread (a large export takes a while)."""
    try:
        request = otlp.decode_request(body, media)
    except otlp.OtlpDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    return otlp.map_spans(request, rules)


async def export_traces(app_state: AppState, request: Request) -> Response:
    """Store the spans of one OTLP export; answer the OTLP ``ExportTraceServiceResponse``."""
    settings = app_state.settings
    headers = request.headers
    media = otlp.media_type(headers.get("content-type"))
    if media is None:
        raise ApiError(415, f"Content-Type must be {otlp.PROTOBUF} or {otlp.JSON}")
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise ApiError(415, f"Content-Encoding must be gzip or identity, not {encoding!r}")
    limit = settings.max_batch_body_bytes
    # No content type passed: read_body checks for JSON, and the media is checked above.
    body = await read_body(None, headers.get("content-length"), request.receive, limit)
    if encoding == "gzip":
        body = gunzip(body, limit)
    rules = otlp.MappingRules(settings.otlp_root_operation, settings.otlp_job_type_attribute)
    mapped = await to_thread.run_sync(_decode, body, media, rules)
    rejected = list(mapped.rejected)
    if mapped.spans:
        op = IngestOtlpSpans(mapped.spans, settings.otlp_max_pending_spans)
        try:
            result: OtlpIngestResult = await submit_write(app_state, op)
        except ValueError as exc:  # nothing of the export was stored
            raise ApiError(400, f"Spans could not be stored: {exc}") from None
        rejected += result.rejected
        for span in mapped.spans:
            if span.run is not None:
                app_state.metadata.observe(span.run["agent_name"], span.run["job_type"])
    return Response(otlp.encode_response(rejected, media), media_type=media)


router = APIRouter(tags=["opentelemetry"])


@router.post(
    PATH,
    summary="OTLP/HTTP trace export (protobuf or JSON, gzip allowed)",
    response_model=None,
    responses={
        200: {"description": "ExportTraceServiceResponse in the request's encoding"},
        400: {
            "description": "Undecodable body: a google.rpc.Status in the request's encoding",
            "content": {otlp.PROTOBUF: {}, otlp.JSON: {}},
        },
        415: {"description": "Content-Type or Content-Encoding not supported"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {otlp.PROTOBUF: {}, otlp.JSON: {}},
        }
    },
)
async def export_traces_route(request: Request) -> Response:
    """Spans following the GenAI semantic conventions become runs (``invoke_agent``
    spans) and their events and token counts (the other spans); see README, "Sending
    OpenTelemetry traces"."""
    try:
        return await export_traces(state(request), request)
    except ApiError as exc:
        # OTLP/HTTP: a 400's body is a google.rpc.Status in the request's encoding.
        media = otlp.media_type(request.headers.get("content-type"))
        if exc.status_code != 400 or media is None:
            raise
        body = otlp.encode_status(otlp.GRPC_INVALID_ARGUMENT, str(exc.detail), media)
        return Response(body, status_code=400, media_type=media)

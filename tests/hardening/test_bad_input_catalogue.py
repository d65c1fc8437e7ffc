# ruff: noqa: E501  (the catalogue keeps one case per line, however long)
"""Issue 10's bad-input catalogue: one case per line, every endpoint, one real server.

Each case is ``(id, method, path, headers, raw body, expected status)``. Bodies are raw
bytes sent with ``content=`` so no client-side JSON library sanitizes them. Placeholders:
``EID`` (a fresh event_id per case), ``UUID`` (a fresh UUID per case, for agent runs)
and ``RUN`` (the event_id of a run created before the catalogue, so per-run endpoints
reach their body checks). Every request that got a 2xx is recorded in a ledger, and the
last test checks the database holds exactly the runs, events and QC reviews those
requests stored, and that ``PRAGMA integrity_check`` is ok.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from local_telemetry.schemas import RunCreate
from support import ServerProcess, query

J = {"content-type": "application/json"}
NO_CT: dict[str, str] = {}
TEXT = {"content-type": "text/plain"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
MIB = 1024 * 1024
START = '"start_time": "2026-01-12T10:30:00Z"'
SQL = "'; DROP TABLE agent_runs; --"


def run(**fields: str) -> bytes:
    """A create body: a valid run whose ``fields`` (raw JSON text) replace or add fields."""
    parts = {
        "event_id": '"EID"',
        "run_id": '"run-EID"',
        "agent_name": '"catalogue"',
        "job_type": '"bad-input"',
        "start_time": '"2026-01-12T10:30:00Z"',
    }
    parts.update(fields)
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()


def deep(levels: int, leaf: str = "1") -> str:
    return '{"a": ' * levels + leaf + "}" * levels


def deep_list(levels: int) -> str:
    return "[" * levels + "]" * levels


def agent(**fields: str) -> bytes:
    """An agent-run body (runbook) with ``fields`` as raw JSON text."""
    parts = {"run_id": '"UUID"', "agent_name": '"catalogue-agent"'}
    parts.update(fields)
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode()


def imported(**fields: str) -> bytes:
    """An import body: one exported run with ``fields`` as raw JSON text."""
    return b"[" + run(**{"created_at": '"2026-01-12T10:31:00Z"', **fields}) + b"]"


def batch(*items: bytes) -> bytes:
    return b"[" + b",".join(items) + b"]"


def big(n: int, char: str = "x") -> str:
    return json.dumps(char * n)


@dataclass(frozen=True)
class Chunked:
    """A body streamed chunked (no Content-Length): ``total`` bytes of a JSON string."""

    total: int

    def chunks(self) -> Iterator[bytes]:
        yield b'{"event_id": "' + b"x" * 65536
        sent = 65536
        while sent < self.total:
            yield b"x" * 65536
            sent += 65536
        yield b'"}'


Body = bytes | Chunked
Case = tuple[str, str, str, dict[str, str], Body, int]

R = "/api/v1/runs"
RB = "/api/v1/runs/batch"
ONE = "/api/v1/runs/RUN"
AR = "/api/agent-runs"
IMP = "/api/v1/import/runs"

# fmt: off
CATALOGUE: list[Case] = [
    # ----- malformed JSON and empty bodies, on every body-taking endpoint -----
    ("create-truncated", "POST", R, J, b'{"event_id": "EID", "run_id": ', 422),
    ("create-trailing-garbage", "POST", R, J, run() + b" trailing", 422),
    ("create-single-quotes", "POST", R, J, b"{'event_id': 'EID'}", 422),
    ("create-trailing-comma", "POST", R, J, run()[:-1] + b",}", 422),
    ("create-unquoted-key", "POST", R, J, b"{event_id: 1}", 422),
    ("create-two-objects", "POST", R, J, run() + run(), 422),
    ("create-comment", "POST", R, J, run() + b" // c", 422),
    ("create-bom", "POST", R, J, b"\xef\xbb\xbf" + run(), 422),
    ("create-invalid-utf8", "POST", R, J, run(agent_name='"ab"').replace(b'"ab"', b'"a\xffb"'), 422),
    ("create-empty", "POST", R, J, b"", 422),
    ("create-whitespace", "POST", R, J, b" \n\t ", 422),
    ("batch-malformed", "POST", RB, J, b"[{", 422),
    ("batch-empty", "POST", RB, J, b"", 422),
    ("patch-malformed", "PATCH", ONE, J, b'{"status": ', 422),
    ("patch-empty", "PATCH", ONE, J, b"", 422),
    ("commit-malformed", "POST", ONE + "/associate-commit", J, b"{", 422),
    ("commit-empty", "POST", ONE + "/associate-commit", J, b"", 422),
    ("events-malformed", "POST", ONE + "/events", J, b'[{"message": }]', 422),
    ("events-empty", "POST", ONE + "/events", J, b"", 422),
    ("qc-malformed", "POST", ONE + "/qc", J, b"{score: 3}", 422),
    ("qc-empty", "POST", ONE + "/qc", J, b"", 422),
    ("agent-malformed", "POST", AR, J, b'{"run_id": "UUID",', 422),
    ("agent-empty", "POST", AR, J, b"", 422),
    ("agent-qc-malformed", "POST", AR + "/RUN/qc", J, b"{", 422),
    ("import-malformed", "POST", IMP, J, b"[{]", 422),
    ("import-empty", "POST", IMP, J, b"", 422),
    ("rules-malformed", "PUT", "/api/v1/alerts/rules", J, b"[{", 422),
    ("rules-empty", "PUT", "/api/v1/alerts/rules", J, b"", 422),
    ("sweep-malformed", "POST", "/api/v1/retention/sweep", J, b"{", 422),
    ("stale-malformed", "POST", "/api/v1/maintenance/close-stale-runs", J, b"{", 422),
    # ----- content types: 415 unless JSON; a missing one is read as JSON -----
    ("create-text-plain", "POST", R, TEXT, run(), 415),
    ("create-form", "POST", R, FORM, run(), 415),
    ("create-xml", "POST", R, {"content-type": "application/xml"}, run(), 415),
    ("create-multipart", "POST", R, {"content-type": "multipart/form-data; boundary=x"}, run(), 415),
    ("create-jsonish", "POST", R, {"content-type": "application/jsonx"}, run(), 415),
    ("create-no-content-type", "POST", R, NO_CT, run(), 201),
    ("create-json-charset", "POST", R, {"content-type": "application/json; charset=utf-8"}, run(), 201),
    ("create-plus-json", "POST", R, {"content-type": "application/vnd.telemetry+json"}, run(), 201),
    ("create-upper-case-type", "POST", R, {"content-type": "APPLICATION/JSON"}, run(), 201),
    ("batch-text-plain", "POST", RB, TEXT, batch(run()), 415),
    ("batch-no-content-type", "POST", RB, NO_CT, batch(run()), 200),
    ("patch-text-plain", "PATCH", ONE, TEXT, b'{"status": "running"}', 415),
    ("patch-no-content-type", "PATCH", ONE, NO_CT, b'{"status": "running"}', 200),
    ("commit-form", "POST", ONE + "/associate-commit", FORM, b'{"commit_hash": "abcdef1", "commit_source": "ci"}', 415),
    ("events-text-plain", "POST", ONE + "/events", TEXT, b'{"message": "m"}', 415),
    ("events-no-content-type", "POST", ONE + "/events", NO_CT, b'{"message": "m"}', 201),
    ("qc-text-plain", "POST", ONE + "/qc", TEXT, b'{"score": 3}', 415),
    ("qc-no-content-type", "POST", ONE + "/qc", NO_CT, b'{"score": 3}', 201),
    ("agent-text-plain", "POST", AR, TEXT, agent(), 415),
    ("agent-no-content-type", "POST", AR, NO_CT, agent(), 200),
    ("agent-qc-form", "POST", AR + "/RUN/qc", FORM, b'{"score": 3}', 415),
    ("import-text-plain", "POST", IMP, TEXT, imported(), 415),
    ("import-no-content-type", "POST", IMP, NO_CT, imported(), 200),
    ("rules-text-plain", "PUT", "/api/v1/alerts/rules", TEXT, b"[]", 415),
    ("sweep-text-plain", "POST", "/api/v1/retention/sweep", TEXT, b'{"dry_run": true}', 415),
    ("stale-text-plain", "POST", "/api/v1/maintenance/close-stale-runs", TEXT, b'{"dry_run": true}', 415),
    # ----- JSON that is not an object (or not an array where one is expected) -----
    ("create-array", "POST", R, J, b"[]", 422),
    ("create-string", "POST", R, J, b'"run"', 422),
    ("create-number", "POST", R, J, b"42", 422),
    ("create-null", "POST", R, J, b"null", 422),
    ("create-true", "POST", R, J, b"true", 422),
    ("batch-object", "POST", RB, J, run(), 422),
    ("batch-null", "POST", RB, J, b"null", 422),
    ("batch-item-not-object", "POST", RB, J, b"[1, \"x\", null]", 200),
    ("patch-array", "PATCH", ONE, J, b"[]", 422),
    ("patch-string", "PATCH", ONE, J, b'"x"', 422),
    ("commit-array", "POST", ONE + "/associate-commit", J, b"[]", 422),
    ("events-number", "POST", ONE + "/events", J, b"7", 422),
    ("events-array-of-numbers", "POST", ONE + "/events", J, b"[1, 2]", 422),
    ("qc-array", "POST", ONE + "/qc", J, b'[{"score": 3}]', 422),
    ("agent-array", "POST", AR, J, b"[]", 422),
    ("import-object", "POST", IMP, J, run(created_at='"2026-01-12T10:31:00Z"'), 422),
    ("rules-object", "PUT", "/api/v1/alerts/rules", J, b"{}", 422),
    ("sweep-array", "POST", "/api/v1/retention/sweep", J, b"[]", 422),
    ("stale-string", "POST", "/api/v1/maintenance/close-stale-runs", J, b'"x"', 422),
    # ----- nesting: 32 levels in JSON fields, 10,000 levels anywhere -----
    ("create-10000-deep-body", "POST", R, J, deep(10_000).encode(), 422),
    ("create-10000-deep-list", "POST", R, J, deep_list(10_000).encode(), 422),
    ("create-10000-deep-metrics", "POST", R, J, run(metrics_json=deep(10_000)), 422),
    ("create-1000-deep-metrics", "POST", R, J, run(metrics_json=deep(1000)), 422),
    ("create-33-deep-metrics", "POST", R, J, run(metrics_json=deep(33)), 422),
    ("create-33-deep-context", "POST", R, J, run(context_json=deep(33)), 422),
    ("create-32-deep-metrics", "POST", R, J, run(metrics_json=deep(32)), 201),
    ("create-32-deep-context", "POST", R, J, run(context_json=deep(31, "[]")), 201),
    ("create-33-deep-lists", "POST", R, J, run(metrics_json='{"a": ' + deep_list(32) + "}"), 422),
    ("batch-10000-deep", "POST", RB, J, b"[" + deep(10_000).encode() + b"]", 422),
    ("batch-33-deep-item", "POST", RB, J, batch(run(metrics_json=deep(33))), 200),
    ("patch-33-deep", "PATCH", ONE, J, ('{"metrics_json": ' + deep(33) + "}").encode(), 422),
    ("patch-10000-deep", "PATCH", ONE, J, ('{"context_json": ' + deep(10_000) + "}").encode(), 422),
    ("events-33-deep-data", "POST", ONE + "/events", J, ('{"message": "m", "data": ' + deep(33) + "}").encode(), 422),
    ("events-32-deep-data", "POST", ONE + "/events", J, ('{"message": "m", "data": ' + deep(32) + "}").encode(), 201),
    ("agent-33-deep-metadata", "POST", AR, J, agent(metadata=deep(33)), 422),
    ("agent-10000-deep", "POST", AR, J, deep(10_000).encode(), 422),
    ("import-33-deep", "POST", IMP, J, imported(metrics_json=deep(33)), 422),
    ("rules-10000-deep", "PUT", "/api/v1/alerts/rules", J, deep_list(10_000).encode(), 422),
    ("sweep-2000-deep", "POST", "/api/v1/retention/sweep", J, deep(2000).encode(), 422),
    # ----- NaN / Infinity literals and numbers out of range -----
    ("create-nan-counter", "POST", R, J, run(items_discovered="NaN"), 422),
    ("create-infinity-counter", "POST", R, J, run(duration_ms="Infinity"), 422),
    ("create-minus-infinity", "POST", R, J, run(duration_ms="-Infinity"), 422),
    ("create-nan-in-metrics", "POST", R, J, run(metrics_json='{"x": NaN}'), 422),
    ("create-infinity-in-context", "POST", R, J, run(context_json='{"x": Infinity}'), 422),
    ("create-minus-infinity-in-metrics", "POST", R, J, run(metrics_json='{"x": -Infinity}'), 422),
    ("create-nan-cost", "POST", R, J, run(cost_usd="NaN"), 422),
    ("create-1e400-cost", "POST", R, J, run(cost_usd="1e400"), 422),
    ("create-1e400-in-metrics", "POST", R, J, run(metrics_json='{"x": 1e400}'), 422),
    ("create-minus-1e400-in-metrics", "POST", R, J, run(metrics_json='{"x": -1e400}'), 422),
    ("create-2p63-counter", "POST", R, J, run(items_succeeded=str(2**63)), 422),
    ("create-2p64-counter", "POST", R, J, run(items_failed=str(2**64)), 422),
    ("create-2p70-counter", "POST", R, J, run(tokens_input=str(2**70)), 422),
    ("create-max-int64-counter", "POST", R, J, run(tokens_output=str(2**63 - 1)), 201),
    ("create-negative-counter", "POST", R, J, run(items_skipped="-1"), 422),
    ("create-float-counter", "POST", R, J, run(items_skipped="1.5"), 422),
    ("create-2p63-in-metrics", "POST", R, J, run(metrics_json=f'{{"x": {2**63}}}'), 422),
    ("create-2p64-in-metrics", "POST", R, J, run(metrics_json=f'{{"x": {2**64}}}'), 422),
    ("create-100-digits-in-metrics", "POST", R, J, run(metrics_json='{"x": ' + "9" * 100 + "}"), 422),
    ("create-below-int64-in-context", "POST", R, J, run(context_json=f'{{"x": [{-(2**63) - 1}]}}'), 422),
    ("create-int64-bounds-in-metrics", "POST", R, J, run(metrics_json=f'{{"x": {2**63 - 1}, "y": {-(2**63)}}}'), 201),
    ("create-huge-int-unknown-field", "POST", R, J, run(extra=str(2**64)), 201),
    ("create-long-digits-in-string", "POST", R, J, run(output_summary='"' + "1" * 40 + '"'), 201),
    ("patch-2p63-duration", "PATCH", ONE, J, f'{{"duration_ms": {2**63}}}'.encode(), 422),
    ("patch-nan", "PATCH", ONE, J, b'{"duration_ms": NaN}', 422),
    ("events-2p64-in-data", "POST", ONE + "/events", J, f'{{"message": "m", "data": {{"n": {2**64}}}}}'.encode(), 422),
    ("qc-2p64-score", "POST", ONE + "/qc", J, f'{{"score": {2**64}}}'.encode(), 422),
    ("qc-nan-score", "POST", ONE + "/qc", J, b'{"score": NaN}', 422),
    ("agent-2p63-tokens", "POST", AR, J, agent(tokens_input=str(2**63)), 422),
    ("agent-infinity-cost", "POST", AR, J, agent(cost_usd="Infinity"), 422),
    ("import-2p64-counter", "POST", IMP, J, imported(items_discovered=str(2**64)), 422),
    ("rules-nan", "PUT", "/api/v1/alerts/rules", J, b'[{"threshold": NaN}]', 422),
    # ----- lone surrogates and NUL, in values, keys and JSON fields -----
    ("create-lone-high-surrogate", "POST", R, J, run(agent_name='"\\ud800"'), 422),
    ("create-lone-low-surrogate", "POST", R, J, run(job_type='"a\\udc00b"'), 422),
    ("create-reversed-pair", "POST", R, J, run(output_summary='"\\udc00\\ud800"'), 422),
    ("create-raw-surrogate-bytes", "POST", R, J, run(host='"hh"').replace(b'"hh"', b'"\xed\xa0\x80"'), 422),
    ("create-surrogate-in-metrics-value", "POST", R, J, run(metrics_json='{"a": "\\ud800"}'), 422),
    ("create-surrogate-in-metrics-key", "POST", R, J, run(metrics_json='{"\\ud800": 1}'), 422),
    ("create-valid-pair", "POST", R, J, run(output_summary='"\\ud83d\\ude00"'), 201),
    ("create-nul-agent", "POST", R, J, run(agent_name='"a\\u0000b"'), 422),
    ("create-nul-event-id", "POST", R, J, run(event_id='"EID\\u0000"'), 422),
    ("create-nul-summary", "POST", R, J, run(error_summary='"\\u0000"'), 422),
    ("create-nul-details", "POST", R, J, run(error_details='"x\\u0000"'), 422),
    ("create-nul-start-time", "POST", R, J, run(start_time='"2026-01-12T10:30:00Z\\u0000"'), 422),
    ("create-nul-in-metrics-value", "POST", R, J, run(metrics_json='{"a": "\\u0000"}'), 422),
    ("create-nul-in-metrics-key", "POST", R, J, run(metrics_json='{"a\\u0000": 1}'), 422),
    ("create-nul-in-context-nested", "POST", R, J, run(context_json='{"a": [{"b": "\\u0000"}]}'), 422),
    ("create-unknown-text-field", "POST", R, J, run(api_note='"ok"'), 201),
    ("batch-nul-item", "POST", RB, J, batch(run(agent_name='"\\u0000"')), 200),
    ("batch-surrogate-item", "POST", RB, J, batch(run(agent_name='"\\ud800"')), 422),
    ("patch-nul", "PATCH", ONE, J, b'{"error_summary": "\\u0000"}', 422),
    ("patch-nul-in-context-key", "PATCH", ONE, J, b'{"context_json": {"\\u0000": 1}}', 422),
    ("patch-surrogate", "PATCH", ONE, J, b'{"output_summary": "\\udfff"}', 422),
    ("commit-nul-author", "POST", ONE + "/associate-commit", J, b'{"commit_hash": "abcdef1", "commit_source": "ci", "commit_author": "\\u0000"}', 422),
    ("events-nul-message", "POST", ONE + "/events", J, b'{"message": "\\u0000"}', 422),
    ("events-nul-data-key", "POST", ONE + "/events", J, b'{"message": "m", "data": {"\\u0000": 1}}', 422),
    ("events-surrogate-message", "POST", ONE + "/events", J, b'{"message": "\\ud800"}', 422),
    ("qc-nul-notes", "POST", ONE + "/qc", J, b'{"score": 3, "notes": "\\u0000"}', 422),
    ("qc-surrogate-reviewer", "POST", ONE + "/qc", J, b'{"score": 3, "reviewer": "\\udbff"}', 422),
    ("agent-nul-name", "POST", AR, J, agent(agent_name='"\\u0000"'), 422),
    ("agent-nul-metadata-key", "POST", AR, J, agent(metadata='{"\\u0000": 1}'), 422),
    ("agent-surrogate-metadata", "POST", AR, J, agent(metadata='{"a": "\\ud800"}'), 422),
    ("import-nul", "POST", IMP, J, imported(agent_name='"\\u0000"'), 422),
    ("rules-surrogate", "PUT", "/api/v1/alerts/rules", J, b'[{"name": "\\ud800"}]', 422),
    # ----- size limits per field (names 1 KiB, error_summary 4 KiB, 256 KiB) -----
    ("create-event-id-257-chars", "POST", R, J, run(event_id=big(257)), 422),
    ("create-agent-name-256-chars", "POST", R, J, run(agent_name=big(256)), 201),
    ("create-parent-run-id-1025", "POST", R, J, run(parent_run_id=big(1025)), 422),
    ("create-parent-run-id-1024", "POST", R, J, run(parent_run_id=big(1024)), 201),
    ("create-host-1025-bytes", "POST", R, J, run(host=big(513, "é")), 422),
    ("create-error-summary-4097", "POST", R, J, run(error_summary=big(4097)), 422),
    ("create-error-summary-4096", "POST", R, J, run(error_summary=big(4096)), 201),
    ("create-error-details-256k+1", "POST", R, J, run(error_details=big(256 * 1024 + 1)), 422),
    ("create-error-details-256k", "POST", R, J, run(error_details=big(256 * 1024)), 201),
    ("create-metrics-over-256k", "POST", R, J, run(metrics_json='{"a": ' + big(256 * 1024) + "}"), 422),
    ("create-output-summary-64k+1", "POST", R, J, run(output_summary=big(64 * 1024 + 1)), 422),
    ("patch-error-details-256k+1", "PATCH", ONE, J, b'{"error_details": ' + big(256 * 1024 + 1).encode() + b"}", 422),
    ("events-data-over-256k", "POST", ONE + "/events", J, b'{"message": "m", "data": {"a": ' + big(256 * 1024).encode() + b"}}", 422),
    ("agent-metadata-over-256k", "POST", AR, J, agent(metadata='{"a": ' + big(256 * 1024) + "}"), 422),
    ("qc-notes-64k+1", "POST", ONE + "/qc", J, b'{"score": 2, "notes": ' + big(64 * 1024 + 1).encode() + b"}", 422),
    # ----- oversized bodies: 413 with a Content-Length, and chunked without one -----
    ("create-1mib+1-with-length", "POST", R, J, run(error_details=big(MIB)), 413),
    ("create-5mib-chunked", "POST", R, J, Chunked(5 * MIB), 413),
    ("patch-2mib-with-length", "PATCH", ONE, J, b'{"error_details": ' + big(2 * MIB).encode() + b"}", 413),
    ("patch-3mib-chunked", "PATCH", ONE, J, Chunked(3 * MIB), 413),
    ("commit-2mib", "POST", ONE + "/associate-commit", J, b'{"commit_author": ' + big(2 * MIB).encode() + b"}", 413),
    ("qc-2mib-chunked", "POST", ONE + "/qc", J, Chunked(2 * MIB), 413),
    ("agent-2mib", "POST", AR, J, agent(input_kind=big(2 * MIB)), 413),
    ("agent-2mib-chunked", "POST", AR, J, Chunked(2 * MIB), 413),
    ("batch-40mib-chunked", "POST", RB, J, Chunked(40 * MIB), 413),
    ("events-40mib-chunked", "POST", ONE + "/events", J, Chunked(40 * MIB), 413),
    ("import-40mib-chunked", "POST", IMP, J, Chunked(40 * MIB), 413),
    ("rules-2mib-chunked", "PUT", "/api/v1/alerts/rules", J, Chunked(2 * MIB), 413),
    # ----- huge batches -----
    ("batch-10001-items", "POST", RB, J, b"[" + b",".join([b"{}"] * 10_001) + b"]", 422),
    ("batch-10000-invalid-items", "POST", RB, J, b"[" + b",".join([b"{}"] * 10_000) + b"]", 200),
    ("batch-empty-array", "POST", RB, J, b"[]", 200),
    ("events-1001", "POST", ONE + "/events", J, b"[" + b",".join([b'{"message": "m"}'] * 1001) + b"]", 422),
    ("events-1000", "POST", ONE + "/events", J, b"[" + b",".join([b'{"message": "m"}'] * 1000) + b"]", 201),
    ("import-1001", "POST", IMP, J, b"[" + b",".join([b"{}"] * 1001) + b"]", 422),
    ("agent-101-qc", "POST", AR, J, agent(qc="[" + ",".join(['{"score": 3}'] * 101) + "]"), 422),
    # ----- duplicate keys (last wins) and unknown fields (ignored, listed) -----
    ("create-duplicate-key-last-wins", "POST", R, J, run()[:-1] + b', "agent_name": "catalogue-dup"}', 201),
    ("create-duplicate-key-last-invalid", "POST", R, J, run()[:-1] + b', "status": "bogus"}', 422),
    ("create-duplicate-key-first-invalid", "POST", R, J, run(status='"bogus"')[:-1] + b', "status": "success"}', 201),
    ("create-unknown-fields", "POST", R, J, run(zzz="1", api_note='"x"', nested='{"a": 1}'), 201),
    ("batch-unknown-fields", "POST", RB, J, batch(run(zzz="1")), 200),
    ("patch-unknown-field", "PATCH", ONE, J, b'{"status": "running", "zzz": 1}', 422),
    ("events-unknown-field", "POST", ONE + "/events", J, b'{"message": "m", "zzz": 1}', 201),
    ("qc-unknown-field", "POST", ONE + "/qc", J, b'{"score": 4, "zzz": 1}', 201),
    ("agent-unknown-field", "POST", AR, J, agent(zzz="1"), 200),
    ("import-unknown-field", "POST", IMP, J, imported(zzz="1"), 200),
    # ----- every timestamp form -----
    ("ts-z", "POST", R, J, run(start_time='"2026-01-12T10:30:00Z"'), 201),
    ("ts-offset", "POST", R, J, run(start_time='"2026-01-12T12:30:00+02:00"'), 201),
    ("ts-negative-offset", "POST", R, J, run(start_time='"2026-01-12T05:30:00-05:00"'), 201),
    ("ts-fraction", "POST", R, J, run(start_time='"2026-01-12T10:30:00.123456Z"'), 201),
    ("ts-naive", "POST", R, J, run(start_time='"2026-01-12T10:30:00"'), 422),
    ("ts-date-only", "POST", R, J, run(start_time='"2026-01-12"'), 422),
    ("ts-leap-second", "POST", R, J, run(start_time='"2016-12-31T23:59:60Z"'), 422),
    ("ts-year-0", "POST", R, J, run(start_time='"0000-01-01T00:00:00Z"'), 422),
    ("ts-year-10000", "POST", R, J, run(start_time='"10000-01-01T00:00:00Z"'), 422),
    ("ts-epoch-number", "POST", R, J, run(start_time="1768213800"), 422),
    ("ts-epoch-float", "POST", R, J, run(start_time="1768213800.5"), 422),
    ("ts-epoch-string", "POST", R, J, run(start_time='"1768213800"'), 422),
    ("ts-hour-24", "POST", R, J, run(start_time='"2026-01-12T24:00:00Z"'), 422),
    ("ts-feb-30", "POST", R, J, run(start_time='"2026-02-30T10:00:00Z"'), 422),
    ("ts-offset-24h", "POST", R, J, run(start_time='"2026-01-12T10:30:00+24:00"'), 422),
    ("ts-empty", "POST", R, J, run(start_time='""'), 422),
    ("ts-null", "POST", R, J, run(start_time="null"), 422),
    ("ts-words", "POST", R, J, run(start_time='"yesterday"'), 422),
    ("ts-year-1-overflow", "POST", R, J, run(start_time='"0001-01-01T00:00:00+01:00"'), 422),
    ("ts-end-naive", "POST", R, J, run(end_time='"2026-01-12T11:00:00"'), 422),
    ("ts-created-at-epoch", "POST", R, J, run(created_at="0"), 422),
    ("patch-ts-leap", "PATCH", ONE, J, b'{"end_time": "2016-12-31T23:59:60Z"}', 422),
    ("events-ts-date-only", "POST", ONE + "/events", J, b'{"message": "m", "timestamp": "2026-01-12"}', 422),
    ("agent-ts-naive", "POST", AR, J, agent(started_at='"2026-01-12T10:00:00"'), 422),
    ("agent-ts-epoch", "POST", AR, J, agent(started_at="1768213800"), 422),
    ("import-ts-year-10000", "POST", IMP, J, imported(created_at='"10000-01-01T00:00:00Z"'), 422),
    # ----- SQL metacharacters: valid text, stored verbatim -----
    ("sql-agent-name", "POST", R, J, run(agent_name=json.dumps(SQL)), 201),
    ("sql-job-type", "POST", R, J, run(job_type=json.dumps("x' OR '1'='1")), 201),
    ("sql-run-id", "POST", R, J, run(run_id=json.dumps('"; DELETE FROM agent_runs; --')), 201),
    ("sql-event-id", "POST", R, J, run(event_id=json.dumps("EID' OR 1=1 --")), 201),
    ("sql-metrics-key", "POST", R, J, run(metrics_json=json.dumps({SQL: "%_\\"})), 201),
    ("sql-events-message", "POST", ONE + "/events", J, json.dumps({"message": SQL}).encode(), 201),
    ("sql-qc-notes", "POST", ONE + "/qc", J, json.dumps({"score": 1, "notes": SQL}).encode(), 201),
    ("sql-patch", "PATCH", ONE, J, json.dumps({"output_summary": SQL}).encode(), 200),
    ("sql-agent", "POST", AR, J, agent(agent_name=json.dumps(SQL)), 200),
    # ----- paths: NUL, traversal, SQL in event_id: 404/422, never 5xx -----
    ("path-nul", "GET", R + "/%00", NO_CT, b"", 404),
    ("path-nul-middle", "GET", R + "/a%00b", NO_CT, b"", 404),
    ("path-nul-events", "GET", R + "/%00/events", NO_CT, b"", 404),
    ("path-nul-qc", "GET", R + "/%00/qc", NO_CT, b"", 404),
    ("path-nul-commit-url", "GET", R + "/%00/commit-url", NO_CT, b"", 404),
    ("path-nul-patch", "PATCH", R + "/%00", J, b'{"status": "success"}', 404),
    ("path-nul-post-events", "POST", R + "/%00/events", J, b'{"message": "m"}', 404),
    ("path-nul-post-qc", "POST", R + "/%00/qc", J, b'{"score": 3}', 404),
    ("path-nul-agent-qc", "POST", AR + "/%00/qc", J, b'{"score": 3}', 404),
    ("path-nul-agent-qc-list", "GET", AR + "/%00/qc", NO_CT, b"", 404),
    ("path-traversal-encoded", "GET", R + "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", NO_CT, b"", 404),
    ("path-traversal-slashes", "GET", R + "/..%2F..%2Fetc", NO_CT, b"", 404),
    ("path-traversal-events", "POST", R + "/..%2F..%2Fetc/events", J, b'{"message": "m"}', 404),
    ("path-traversal-patch", "PATCH", R + "/%2e%2e%2fetc", J, b'{"status": "success"}', 404),
    ("path-overlong-utf8", "GET", R + "/%c0%ae%c0%ae", NO_CT, b"", 404),
    ("path-invalid-utf8", "GET", R + "/%ff%fe", NO_CT, b"", 404),
    ("path-5000-chars", "GET", R + "/" + "a" * 5000, NO_CT, b"", 404),
    ("path-sql-quote", "GET", R + "/x'%20OR%20'1'%3D'1", NO_CT, b"", 404),
    ("path-sql-drop", "GET", R + "/1%3B%20DROP%20TABLE%20agent_runs", NO_CT, b"", 404),
    ("path-sql-events", "GET", R + "/'%20UNION%20SELECT%201--/events", NO_CT, b"", 404),
    ("path-sql-patch", "PATCH", R + "/'%3B--", J, b'{"status": "success"}', 404),
    ("path-sql-qc", "POST", R + "/%22%3B--/qc", J, b'{"score": 3}', 404),
    ("path-percent", "GET", R + "/%25", NO_CT, b"", 404),
    # ----- query parameters with garbage: 422 naming the parameter -----
    ("q-runs-limit-negative", "GET", R + "?limit=-1", NO_CT, b"", 422),
    ("q-runs-limit-zero", "GET", R + "?limit=0", NO_CT, b"", 422),
    ("q-runs-limit-huge", "GET", R + "?limit=99999999999999999999999", NO_CT, b"", 422),
    ("q-runs-limit-text", "GET", R + "?limit=abc", NO_CT, b"", 422),
    ("q-runs-limit-float", "GET", R + "?limit=1.5", NO_CT, b"", 422),
    ("q-runs-limit-nul", "GET", R + "?limit=%00", NO_CT, b"", 422),
    ("q-runs-offset-negative", "GET", R + "?offset=-5", NO_CT, b"", 422),
    ("q-runs-offset-huge", "GET", R + "?offset=99999999999999999999999", NO_CT, b"", 422),
    ("q-runs-status-unknown", "GET", R + "?status=bogus", NO_CT, b"", 422),
    ("q-runs-created-after-naive", "GET", R + "?created_after=2026-01-12T10:30:00", NO_CT, b"", 422),
    ("q-runs-created-before-date", "GET", R + "?created_before=2026-01-12", NO_CT, b"", 422),
    ("q-runs-start-from-garbage", "GET", R + "?start_time_from=garbage", NO_CT, b"", 422),
    ("q-runs-start-to-epoch", "GET", R + "?start_time_to=1768213800", NO_CT, b"", 422),
    ("q-runs-agent-nul", "GET", R + "?agent_name=a%00b", NO_CT, b"", 422),
    ("q-runs-job-nul", "GET", R + "?job_type=%00", NO_CT, b"", 422),
    ("q-runs-run-id-nul", "GET", R + "?run_id=%00", NO_CT, b"", 422),
    ("q-runs-parent-nul", "GET", R + "?parent_run_id=%00", NO_CT, b"", 422),
    ("q-runs-sql-agent", "GET", R + "?agent_name=%27%3B%20DROP%20TABLE%20agent_runs%3B--", NO_CT, b"", 200),
    ("q-events-limit-negative", "GET", ONE + "/events?limit=-1", NO_CT, b"", 422),
    ("q-events-limit-huge", "GET", ONE + "/events?limit=10001", NO_CT, b"", 422),
    ("q-events-after-id-text", "GET", ONE + "/events?after_id=x", NO_CT, b"", 422),
    ("q-events-after-id-negative", "GET", ONE + "/events?after_id=-1", NO_CT, b"", 422),
    ("q-events-after-id-2p64", "GET", ONE + f"/events?after_id={2**64}", NO_CT, b"", 422),
    ("q-alerts-state-unknown", "GET", "/api/v1/alerts?state=burning", NO_CT, b"", 422),
    ("q-alerts-limit-negative", "GET", "/api/v1/alerts?limit=-1", NO_CT, b"", 422),
    ("q-alerts-offset-text", "GET", "/api/v1/alerts?offset=x", NO_CT, b"", 422),
    ("q-alerts-rule-nul", "GET", "/api/v1/alerts?rule_name=%00", NO_CT, b"", 422),
    ("q-alerts-agent-nul", "GET", "/api/v1/alerts?agent_name=%00", NO_CT, b"", 422),
    ("q-kpis-from-naive", "GET", "/api/v1/kpis?from=2026-01-12T00:00:00", NO_CT, b"", 422),
    ("q-kpis-to-date", "GET", "/api/v1/kpis?to=2026-01-12", NO_CT, b"", 422),
    ("q-kpis-group-by-unknown", "GET", "/api/v1/kpis?group_by=planet", NO_CT, b"", 422),
    ("q-kpis-tz-unknown", "GET", "/api/v1/kpis?tz=Mars/Olympus", NO_CT, b"", 422),
    ("q-kpis-tz-traversal", "GET", "/api/v1/kpis?tz=..%2F..%2Fetc%2Fpasswd", NO_CT, b"", 422),
    ("q-kpis-tz-nul", "GET", "/api/v1/kpis?tz=%00", NO_CT, b"", 422),
    ("q-kpis-agent-nul", "GET", "/api/v1/kpis?agent_name=%00", NO_CT, b"", 422),
    ("q-kpis-from-after-to", "GET", "/api/v1/kpis?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", NO_CT, b"", 422),
    ("q-export-runs-format", "GET", "/api/v1/export/runs?format=exe", NO_CT, b"", 422),
    ("q-export-runs-limit", "GET", "/api/v1/export/runs?created_after=2026-01-12", NO_CT, b"", 422),
    ("q-export-runs-status", "GET", "/api/v1/export/runs?status=bogus", NO_CT, b"", 422),
    ("q-export-runs-nul", "GET", "/api/v1/export/runs?agent_name=%00", NO_CT, b"", 422),
    ("q-export-kpis-format", "GET", "/api/v1/export/kpis?format=%00", NO_CT, b"", 422),
    ("q-export-kpis-group-by", "GET", "/api/v1/export/kpis?group_by=x", NO_CT, b"", 422),
    ("q-export-kpis-tz", "GET", "/api/v1/export/kpis?tz=Nowhere", NO_CT, b"", 422),
    # ----- valid requests of the same shapes (the ledger counts what they store) -----
    ("ok-create", "POST", R, J, run(), 201),
    ("ok-create-full", "POST", R, J, run(status='"success"', metrics_json='{"a": [1, 2.5, null, true]}', error_summary='"boom"'), 201),
    ("ok-batch", "POST", RB, J, batch(run(), run(event_id='"EID-2"'), run(agent_name='"\\u0000"')), 200),
    ("ok-batch-1000", "POST", RB, J, batch(*(run(event_id=f'"EID-{n}"') for n in range(1000))), 200),
    ("ok-events-one", "POST", ONE + "/events", J, b'{"message": "hello", "level": "WARNING"}', 201),
    ("ok-qc", "POST", ONE + "/qc", J, b'{"score": 5}', 201),
    ("ok-agent-start", "POST", AR, J, agent(), 200),
    ("ok-agent-end", "POST", AR, J, agent(ended_at='"2026-01-12T10:30:00Z"', resolution='"resolved"', started_at='"2026-01-12T10:00:00Z"'), 200),
    ("ok-import", "POST", IMP, J, imported(), 200),
]
# fmt: on


def _string_fields() -> list[str]:
    """Every text-typed field of a run create body (from the schema, not a list by hand)."""
    props = RunCreate.model_json_schema()["properties"]
    return sorted(
        name
        for name, spec in props.items()
        if spec.get("type") == "string"
        or any(option.get("type") == "string" for option in spec.get("anyOf", ()))
    )


STRING_FIELDS = _string_fields()
MEGA = big(MIB + 1)
# A 1 MB+ string in every text field: 413 alone (past the 1 MiB run body limit), and a
# per-item refusal in a batch or an import (32 MiB limit) that reaches field validation.
CATALOGUE += [(f"mb-create-{f}", "POST", R, J, run(**{f: MEGA}), 413) for f in STRING_FIELDS]
CATALOGUE += [(f"mb-batch-{f}", "POST", RB, J, batch(run(**{f: MEGA})), 200) for f in STRING_FIELDS]
CATALOGUE += [(f"mb-import-{f}", "POST", IMP, J, imported(**{f: MEGA}), 422) for f in STRING_FIELDS]


@dataclass
class Ledger:
    """What the accepted (2xx) requests stored, to compare with the database."""

    run_ids: set[str] = field(default_factory=set)
    events: int = 0
    reviews: int = 0


@dataclass
class Target:
    server: ServerProcess
    client: httpx.Client
    run: str
    ledger: Ledger


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One server for the whole catalogue, and a run the per-run cases address."""
    db_path = tmp_path_factory.mktemp("catalogue") / "telemetry.sqlite"
    server = ServerProcess(db_path, {}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            event_id = f"target-{uuid.uuid4()}"
            body = {"event_id": event_id, "run_id": "t", "agent_name": "catalogue",
                    "job_type": "target", "start_time": "2026-01-12T10:00:00Z"}  # fmt: skip
            assert client.post("/api/v1/runs", json=body).status_code == 201
            ledger = Ledger(run_ids={event_id})
            yield Target(server, client, event_id, ledger)
    finally:
        server.stop()


def _record(ledger: Ledger, method: str, path: str, sent: Any, reply: httpx.Response) -> None:
    """Add what a 2xx answer stored to the ledger (the body as the server read it)."""
    answer = reply.json()
    if method == "POST" and path == R:
        if answer["status"] == "created":
            ledger.run_ids.add(answer["event_id"])
    elif method == "POST" and path == RB:
        refused = {error["index"] for error in answer["errors"]}
        ids = {item["event_id"] for n, item in enumerate(sent) if n not in refused}
        assert answer["inserted"] == len(ids - ledger.run_ids)
        ledger.run_ids |= ids
    elif method == "POST" and path == IMP:
        ledger.run_ids |= {item["event_id"] for item in sent}
    elif method == "POST" and path == AR:
        ledger.run_ids.add(answer["run_id"])
    elif method == "POST" and path.endswith("/events"):
        ledger.events += answer["inserted"]
    elif method == "POST" and path.endswith("/qc"):
        ledger.reviews += 1


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CATALOGUE],
)
def test_catalogue(
    target: Target,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Body,
    expected: int,
) -> None:
    fresh = str(uuid.uuid4())
    path = path.replace("RUN", target.run)
    content: bytes | Iterator[bytes]
    if isinstance(body, Chunked):
        content = body.chunks()
    else:
        content = body.replace(b"EID", fresh.encode()).replace(b"UUID", str(uuid.uuid4()).encode())
    try:
        reply = target.client.request(method, path, content=content, headers=headers)
    except httpx.WriteError:
        # The server answered 413 and closed before the client finished sending.
        assert expected == 413
        return
    if isinstance(body, Chunked):
        assert reply.request.headers.get("transfer-encoding") == "chunked"
    assert reply.status_code == expected, reply.text[:500]
    assert reply.status_code < 500
    assert reply.headers["content-type"].startswith("application/json")
    if reply.is_success:
        assert isinstance(content, bytes)
        sent = json.loads(content) if content.strip() else None
        _record(target.ledger, method, path, sent, reply)
    else:
        assert "detail" in reply.json()


def test_unknown_fields_are_listed_and_known_ones_keep_the_answer_identical(
    target: Target,
) -> None:
    client, ledger = target.client, target.ledger
    plain = run().replace(b"EID", str(uuid.uuid4()).encode())
    reply = client.post(R, content=plain, headers=J)
    assert reply.status_code == 201
    assert "ignored_fields" not in reply.json()
    ledger.run_ids.add(reply.json()["event_id"])
    extra = run(zeta="1", alpha='"a"').replace(b"EID", str(uuid.uuid4()).encode())
    reply = client.post(R, content=extra, headers=J)
    assert reply.json()["ignored_fields"] == ["alpha", "zeta"]
    ledger.run_ids.add(reply.json()["event_id"])


def test_duplicate_keys_last_wins(target: Target) -> None:
    event_id = str(uuid.uuid4())
    body = run(event_id=json.dumps(event_id))[:-1] + b', "agent_name": "catalogue-last"}'
    assert target.client.post(R, content=body, headers=J).status_code == 201
    target.ledger.run_ids.add(event_id)
    assert target.client.get(f"{R}/{event_id}").json()["agent_name"] == "catalogue-last"


def test_field_errors_name_the_field(target: Target) -> None:
    for name, value in (("error_summary", big(4097)), ("parent_run_id", big(1025)),
                        ("metrics_json", deep(33)), ("error_details", big(300_000))):  # fmt: skip
        reply = target.client.post(R, content=run(**{name: value}), headers=J)
        assert reply.status_code == 422
        assert [e["loc"] for e in reply.json()["detail"]] == [["body", name]], reply.text[:300]


def test_the_database_holds_exactly_what_was_acknowledged(target: Target) -> None:
    """Runs after the whole catalogue: every 2xx stored, nothing else, integrity ok."""
    ledger, server = target.ledger, target.server
    stored = {str(row[0]) for row in query(server, "SELECT event_id FROM agent_runs")}
    assert stored == ledger.run_ids
    assert query(server, "SELECT COUNT(*) FROM run_events")[0][0] == ledger.events
    assert query(server, "SELECT COUNT(*) FROM agent_qc")[0][0] == ledger.reviews
    names = {str(row[0]) for row in query(server, "SELECT DISTINCT agent_name FROM agent_runs")}
    assert SQL in names  # stored verbatim
    with closing(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "Traceback" not in server.log()


def test_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 250, len(CATALOGUE)

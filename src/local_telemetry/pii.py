"""PII scrubbing on ingest: typed placeholders for personal data and secrets.

A :class:`Scrubber` is built once from the settings (:func:`scrubber_from_settings`;
``None`` when scrubbing is off, so the ingest path makes no call at all). It replaces

- e-mail addresses with ``[email]``;
- bearer tokens and API-key shapes (``Bearer x``, ``sk-...``, ``ghp_...``/``gho_...``,
  ``AKIA...``/``ASIA...``, ``xoxb-``/``xoxp-``..., ``api_key=``/``token=``/``secret=``/
  ``password=`` values of 8+ characters) with ``[secret]`` (the key name is kept);
- IPv6 (full, compressed, with zone or IPv4 tail; checked by :mod:`ipaddress`) and IPv4
  (octets 0-255) addresses with ``[ip]``;
- card numbers: 13-19 digits, spaces or dashes allowed, passing the Luhn check, with
  ``[card]``;
- phone numbers, international (``+`` and 7-15 digits) or national with separators
  (``(555) 123-4567``, ``555-123-4567``, ``020 7946 0958``), with ``[phone]``;
- every match of a user pattern (``TELEMETRY_PII_EXTRA_PATTERNS``) with ``[redacted]``.

The product's identifiers are left alone by construction: ISO timestamps (date groups are
4-2-2 digits, times use colons), UUIDs and git hashes (digit runs glued to hex letters or
dashes), version numbers and plain integers (no separators, or fewer than 7 digits).

:meth:`Scrubber.scrub_op` is the single place the server applies it: on every write
operation, after validation and before the writer stores it (``api.runs.submit_write``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from local_telemetry.storage.base import (
    AddQc,
    AppendEvents,
    IngestOtlpSpans,
    InsertRuns,
    UpdateRun,
    UpsertAgentRun,
    WriteOp,
)

EXTRA_PATTERNS_SETTING = "TELEMETRY_PII_EXTRA_PATTERNS"

RUN_TEXT_FIELDS: frozenset[str] = frozenset(
    {
        "item_name",
        "agent_owner",
        "input_summary",
        "output_summary",
        "source_ref",
        "target_ref",
        "error_summary",
        "error_details",
        "git_commit_author",
    }
)
"""Free-text run columns that are scrubbed (identifiers and categories are not)."""
RUN_JSON_FIELDS: frozenset[str] = frozenset({"metrics_json", "context_json"})
"""Run columns holding JSON objects whose string values are scrubbed."""
QC_TEXT_FIELDS: frozenset[str] = frozenset({"notes", "reviewer"})

_SECRET_KEY = re.compile(r"(?i)[\w-]*(?:api[_-]?key|apikey|token|secret|password|passwd)")
"""A JSON key whose string value is replaced with ``[secret]`` whatever it looks like."""

Replacer = Callable[[re.Match[str]], str]


def luhn_valid(digits: str) -> bool:
    """Whether the digit string passes the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _keep_prefix(group: int, placeholder: str) -> Replacer:
    """Replace from the start of ``group`` on; the text before it (the key) is kept."""

    def replace_match(match: re.Match[str]) -> str:
        return match.group(0)[: match.start(group) - match.start(0)] + placeholder

    return replace_match


def _card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    return "[card]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else text


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return text
    return "[ip]"


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    return "[phone]" if 7 <= digits <= 15 else text


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_SEP = r"[ .-]"

BUILTIN_RULES: tuple[tuple[str, re.Pattern[str], str | Replacer], ...] = (
    (
        "secret",
        re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)"),
        _keep_prefix(1, "[secret]"),
    ),
    (
        "secret",
        re.compile(
            r"(?i)(?<![\w-])[\w-]*?(?:api[_-]?key|apikey|access[_-]?key|token|secret"
            r"|password|passwd)[\"']?\s*[=:]\s*[\"']?([^\s\"'&,;]{8,})"
        ),
        _keep_prefix(1, "[secret]"),
    ),
    (
        "secret",
        re.compile(
            r"(?<![\w-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"
            r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[bpars]-[A-Za-z0-9-]{10,})(?![\w-])"
        ),
        "[secret]",
    ),
    (
        "email",
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
        "[email]",
    ),
    (
        "ip",
        re.compile(
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
            rf"(?:{_OCTET}(?:\.{_OCTET}){{3}}|[0-9A-Fa-f]{{1,4}})?(?:%[\w.]+)?(?![\w:]|\.\d)"
        ),
        _ipv6,
    ),
    (
        "ip",
        re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)"),
        "[ip]",
    ),
    ("card", re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)"), _card),
    (
        "phone",
        re.compile(
            r"(?<![\w.+-])(?:"
            rf"\+\d{{1,3}}(?:{_SEP}?\(?\d{{1,4}}\)?){{1,7}}"  # +44 20 7946 0958, +15551234567
            rf"|\(\d{{2,4}}\){_SEP}?\d{{3,4}}{_SEP}\d{{3,4}}"  # (555) 123-4567
            rf"|\d{{2,4}}(?P<s>{_SEP})\d{{3,4}}(?P=s)\d{{3,4}}"  # 555-123-4567, 020 7946 0958
            r")(?![\w-]|\.\d)"
        ),
        _phone,
    ),
)


class Scrubber:
    """Compiled rules: built-in ones (when ``builtin``) then the user's patterns."""

    def __init__(self, *, builtin: bool = True, extra_patterns: Sequence[str] = ()) -> None:
        rules: list[tuple[re.Pattern[str], str | Replacer]] = []
        if builtin:
            rules.extend((pattern, repl) for _, pattern, repl in BUILTIN_RULES)
        rules.extend((re.compile(p), "[redacted]") for p in extra_patterns)
        self.builtin = builtin
        self._rules = tuple(rules)

    def scrub_text(self, text: str) -> str:
        """``text`` with every match of every rule replaced by its placeholder."""
        for pattern, repl in self._rules:
            text = pattern.sub(repl, text)
        return text

    def scrub_value(self, value: Any) -> Any:
        """A JSON value with its strings scrubbed (dict keys kept, nesting walked).

        With the built-in rules, a string under a secret-like key (``api_key``,
        ``token``, ``password``...) becomes ``[secret]`` whatever it looks like.
        """
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {
                key: "[secret]"
                if self.builtin and isinstance(item, str) and item and _SECRET_KEY.fullmatch(key)
                else self.scrub_value(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.scrub_value(item) for item in value]
        return value

    def _scrub_fields(
        self, row: Mapping[str, Any], text_fields: frozenset[str], json_fields: frozenset[str]
    ) -> dict[str, Any]:
        out = dict(row)
        for key, value in row.items():
            if value is None:
                continue
            if key in text_fields and isinstance(value, str):
                out[key] = self.scrub_text(value)
            elif key in json_fields:
                out[key] = self.scrub_value(value)
        return out

    def scrub_run(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A run's columns with free text and JSON values scrubbed."""
        return self._scrub_fields(row, RUN_TEXT_FIELDS, RUN_JSON_FIELDS)

    def scrub_qc(self, review: Mapping[str, Any]) -> dict[str, Any]:
        """A QC review with ``notes`` and ``reviewer`` scrubbed."""
        return self._scrub_fields(review, QC_TEXT_FIELDS, frozenset())

    def scrub_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A run event with ``message`` and ``data`` scrubbed."""
        return self._scrub_fields(event, frozenset({"message"}), frozenset({"data"}))

    def scrub_op(self, op: WriteOp) -> WriteOp:
        """The write operation with everything it would store scrubbed."""
        if isinstance(op, InsertRuns):
            return replace(op, rows=[self.scrub_run(row) for row in op.rows])
        if isinstance(op, UpdateRun):
            return replace(op, fields=self.scrub_run(op.fields))
        if isinstance(op, AppendEvents):
            return replace(op, events=[self.scrub_event(event) for event in op.events])
        if isinstance(op, AddQc):
            return replace(op, review=self.scrub_qc(op.review))
        if isinstance(op, UpsertAgentRun):
            return replace(
                op,
                fields=self.scrub_run(op.fields),
                qc=[self.scrub_qc(review) for review in op.qc],
            )
        if isinstance(op, IngestOtlpSpans):
            spans = [
                replace(
                    span,
                    run=None if span.run is None else self.scrub_run(span.run),
                    event=None if span.event is None else self.scrub_event(span.event),
                )
                for span in op.spans
            ]
            return replace(op, spans=spans)
        return op  # pragma: no cover - every WriteOp is handled above


def parse_extra_patterns(spec: str) -> list[str]:
    """``TELEMETRY_PII_EXTRA_PATTERNS`` (a JSON array of regex strings; empty: none),
    each compiled once to check it; ``ValueError`` naming the setting otherwise."""
    if not spec.strip():
        return []
    try:
        patterns = json.loads(spec)
    except json.JSONDecodeError:
        patterns = None
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            f"{EXTRA_PATTERNS_SETTING} must be a JSON array of regular expression strings, "
            'e.g. ["EMP-\\\\d{6}"]'
        )
    for index, pattern in enumerate(patterns):
        if not pattern:
            raise ValueError(f"{EXTRA_PATTERNS_SETTING}[{index}] is empty")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"{EXTRA_PATTERNS_SETTING}[{index}] {pattern!r} is not a valid regular "
                f"expression: {exc}"
            ) from None
    return patterns


def build_scrubber(enabled: bool, extra_patterns: str) -> Scrubber | None:
    """The scrubber for these settings, or ``None`` when nothing is to be scrubbed."""
    extra = parse_extra_patterns(extra_patterns)
    if not enabled and not extra:
        return None
    return Scrubber(builtin=enabled, extra_patterns=extra)

"""PII scrubbing rules (``local_telemetry.pii``), one case a line."""

from __future__ import annotations

from typing import Any

import pytest

from local_telemetry.config import ConfigurationError, load_settings
from local_telemetry.pii import Scrubber, build_scrubber, luhn_valid, parse_extra_patterns
from local_telemetry.storage.base import (
    AddQc,
    AppendEvents,
    InsertRuns,
    UpdateRun,
    UpsertAgentRun,
)

SCRUB = Scrubber()

SCRUBBED = [
    # e-mail
    ("mail bob@example.com now", "mail [email] now"),
    ("bob.smith+tag@mail.example.co.uk", "[email]"),
    ("<alice_o@sub-domain.example.org>", "<[email]>"),
    # phone
    ("call +44 20 7946 0958 today", "call [phone] today"),
    ("+1-555-123-4567", "[phone]"),
    ("+15551234567", "[phone]"),
    ("+33 (0)1 42 68 53 00", "[phone]"),
    ("(555) 123-4567", "[phone]"),
    ("555-123-4567", "[phone]"),
    ("555.123.4567", "[phone]"),
    ("020 7946 0958", "[phone]"),
    # card (Luhn-valid)
    ("card 4111 1111 1111 1111 ok", "card [card] ok"),
    ("4111-1111-1111-1111", "[card]"),
    ("4111111111111111", "[card]"),
    ("amex 378282246310005.", "amex [card]."),
    ("5555555555554444", "[card]"),
    ("6011 0009 9013 9424 (19 allowed)", "[card] (19 allowed)"),
    # IPv4
    ("from 192.168.1.10.", "from [ip]."),
    ("0.0.0.0 and 255.255.255.255", "[ip] and [ip]"),
    ("host=10.0.0.1:8080", "host=[ip]:8080"),
    # IPv6
    ("::1", "[ip]"),
    ("fe80::1%eth0", "[ip]"),
    ("2001:db8::8a2e:370:7334", "[ip]"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[ip]"),
    ("::ffff:192.0.2.1", "[ip]"),
    ("2001:db8::", "[ip]"),
    ("[2001:db8::1]:443", "[[ip]]:443"),
    # secrets
    ("Authorization: Bearer abcdef123456789", "Authorization: Bearer [secret]"),
    ("bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "bearer [secret]"),
    ("key sk-abcdefghijklmnop1234", "key [secret]"),
    ("sk-proj-abcdefghijklmnop1234_x", "[secret]"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[secret]"),
    ("AKIAIOSFODNN7EXAMPLE", "[secret]"),
    ("xoxb-1234-5678-abcdefgh", "[secret]"),
    ("xoxp-1234567890-abcdef", "[secret]"),
    ("api_key=abcd1234efgh5678", "api_key=[secret]"),
    ("https://x.test/?token=abcdefgh12345678&page=2", "https://x.test/?token=[secret]&page=2"),
    ("token: 'abcdefgh12345678'", "token: '[secret]'"),
    ("PASSWORD=hunter2hunter2", "PASSWORD=[secret]"),
    ("client_secret: s3cr3tvalue", "client_secret: [secret]"),
    # several kinds in one text
    ("a@b.io 192.0.2.7 4111111111111111", "[email] [ip] [card]"),
]

UNTOUCHED = [
    "2026-01-12T10:30:00Z-agent-abc123",  # run id
    "2026-01-12T10:30:00.123456Z",  # stored timestamp
    "2026-01-12 10:30:00",
    "2026.01.12",
    "10:30:00",
    "550e8400-e29b-41d4-a716-446655440000",  # event_id UUID
    "12345678-1234-1234-1234-123456789012",  # all-digit UUID
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # git hash
    "1234567890123456789012345678901234567890",  # 40-digit hash
    "abc1234",  # short hash
    "v1.2.3",
    "version 10.4.12",
    "2.0.0-rc.1",
    "took 1234567 ms",
    "count 42",
    "1700000000",
    "items 100-2000",
    "4111-1111-1111-1112",  # Luhn-invalid
    "4111111111111112",  # Luhn-invalid
    "411111111111",  # 12 digits: too short
    "999.1.1.1",  # octet out of range
    "1.2.3.256",
    "00:1a:2b:3c:4d:5e",  # MAC address
    "std::vector",
    "tokens_input: 12345678",
    "token=short",
    "the bearer of bad news",
    "sk-short",
    "user at example dot com",
    "+123",  # too few digits
    "[email] [phone] [card] [ip] [secret] [redacted]",  # placeholders are stable
]


@pytest.mark.parametrize(("text", "expected"), SCRUBBED)
def test_pii_is_replaced(text: str, expected: str) -> None:
    assert SCRUB.scrub_text(text) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_identifiers_and_non_pii_are_untouched(text: str) -> None:
    assert SCRUB.scrub_text(text) == text


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("79927398713", True),
        ("79927398710", False),
        ("378282246310005", True),
        ("0", True),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


def test_user_patterns_become_redacted() -> None:
    scrubber = Scrubber(extra_patterns=[r"EMP-\d{6}", r"(?i)project\s+falcon"])
    assert scrubber.scrub_text("EMP-123456 on Project Falcon") == "[redacted] on [redacted]"


def test_user_patterns_alone_leave_builtin_rules_off() -> None:
    scrubber = Scrubber(builtin=False, extra_patterns=[r"EMP-\d{6}"])
    assert scrubber.scrub_text("EMP-123456 bob@example.com") == "[redacted] bob@example.com"


def test_nested_json_values_are_scrubbed_and_keys_kept() -> None:
    value: dict[str, Any] = {
        "bob@example.com": "mail bob@example.com",
        "list": ["192.168.0.1", 4111111111111111, {"deep": [{"phone": "+44 20 7946 0958"}]}],
        "n": 5,
        "f": 1.5,
        "b": True,
        "none": None,
        "api_key": "short",
        "password": "",
        "token_count": 12,
    }
    assert SCRUB.scrub_value(value) == {
        "bob@example.com": "mail [email]",
        "list": ["[ip]", 4111111111111111, {"deep": [{"phone": "[phone]"}]}],
        "n": 5,
        "f": 1.5,
        "b": True,
        "none": None,
        "api_key": "[secret]",
        "password": "",
        "token_count": 12,
    }


def test_write_ops_scrub_text_fields_and_keep_identifiers() -> None:
    row = {
        "event_id": "550e8400-e29b-41d4-a716-446655440000",
        "run_id": "2026-01-12T10:30:00Z-agent-bob@example.com",
        "agent_name": "a@b.io",
        "git_repo": "https://10.0.0.1/repo",
        "error_summary": "failed for a@b.io",
        "context_json": {"ip": "10.0.0.1"},
    }
    (scrubbed,) = SCRUB.scrub_op(InsertRuns([row])).rows  # type: ignore[union-attr]
    assert scrubbed == {
        **row,
        "error_summary": "failed for [email]",
        "context_json": {"ip": "[ip]"},
    }
    update = SCRUB.scrub_op(UpdateRun("e", {"output_summary": "a@b.io", "status": "success"}))
    assert update == UpdateRun("e", {"output_summary": "[email]", "status": "success"})
    events = SCRUB.scrub_op(
        AppendEvents("e", [{"message": "a@b.io", "level": "info", "data": {"x": "a@b.io"}}])
    )
    assert events == AppendEvents(
        "e", [{"message": "[email]", "level": "info", "data": {"x": "[email]"}}]
    )
    qc = SCRUB.scrub_op(AddQc("e", {"score": 3, "notes": "call 555-123-4567", "reviewer": None}))
    assert qc == AddQc("e", {"score": 3, "notes": "call [phone]", "reviewer": None})
    agent = SCRUB.scrub_op(
        UpsertAgentRun(
            "e",
            {"agent_name": "a", "context_json": {"who": "a@b.io"}},
            {"job_type": "agent_run"},
            [{"score": 5, "notes": "a@b.io", "reviewer": "c@d.io"}],
        )
    )
    assert agent == UpsertAgentRun(
        "e",
        {"agent_name": "a", "context_json": {"who": "[email]"}},
        {"job_type": "agent_run"},
        [{"score": 5, "notes": "[email]", "reviewer": "[email]"}],
    )


def test_scrubbing_is_off_by_default() -> None:
    assert build_scrubber(False, "") is None
    assert build_scrubber(True, "") is not None
    assert build_scrubber(False, '["x"]') is not None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("", []), ("  ", []), ("[]", []), ('["a+", "b\\\\d"]', ["a+", "b\\d"])],
)
def test_extra_patterns_format(spec: str, expected: list[str]) -> None:
    assert parse_extra_patterns(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('["("]', "TELEMETRY_PII_EXTRA_PATTERNS[0] '(' is not a valid regular expression"),
        ('["ok", "[a-"]', "TELEMETRY_PII_EXTRA_PATTERNS[1]"),
        ("EMP-\\d+", "TELEMETRY_PII_EXTRA_PATTERNS must be a JSON array"),
        ('{"a": 1}', "TELEMETRY_PII_EXTRA_PATTERNS must be a JSON array"),
        ("[1]", "TELEMETRY_PII_EXTRA_PATTERNS must be a JSON array"),
        ('[""]', "TELEMETRY_PII_EXTRA_PATTERNS[0] is empty"),
    ],
)
def test_invalid_extra_patterns_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_settings(pii_extra_patterns=spec)


def test_settings_defaults() -> None:
    settings = load_settings()
    assert settings.pii_scrub is False
    assert settings.pii_extra_patterns == ""

"""Timestamps: ISO 8601 with a timezone in, one fixed-width UTC form out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from local_telemetry.timestamps import (
    TimestampError,
    normalize,
    normalize_legacy,
    parse_instant,
    to_stored,
)

STORED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-12T10:30:00Z", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-12T10:30:00+00:00", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-12T12:30:00+02:00", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-12T05:00:00-05:30", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-12T00:30:00-10:00", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-13T00:30:00+14:00", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
        ("2026-01-12T10:30:00.123456Z", datetime(2026, 1, 12, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2026-01-12T10:30:00.5+01:00", datetime(2026, 1, 12, 9, 30, 0, 500000, tzinfo=UTC)),
        ("  2026-01-12T10:30:00Z  ", datetime(2026, 1, 12, 10, 30, tzinfo=UTC)),
    ],
)
def test_parse_instant_converts_any_offset_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-12T10:30:00",
        "2026-01-12 10:30:00",
        "2026-01-12",
        "2026-01-12T10:30:00.123456",
    ],
)
def test_parse_instant_rejects_a_timestamp_without_timezone(text: str) -> None:
    with pytest.raises(TimestampError, match="no timezone"):
        parse_instant(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "not-a-date-at-all",
        "10000-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-12T25:00:00Z",
        "2026-01-12T10:30:00+24:00",
        "2026-01-12T10:30:00Z\x00",
        "2026-01-12T10:30:00Z\x00garbage",
        "2026-01-12T10:30:00\x00+05:00",
        "\x002026-01-12T10:30:00Z",
    ],
)
def test_parse_instant_rejects_garbage_and_nul(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_instant(text)


@pytest.mark.parametrize("value", [None, 1736676600, 1.5, b"2026-01-12T10:30:00Z"])
def test_parse_instant_rejects_non_strings(value: object) -> None:
    with pytest.raises(TimestampError):
        parse_instant(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_instant_reports_instants_outside_the_calendar_as_errors(text: str) -> None:
    with pytest.raises(TimestampError, match="out of range"):
        parse_instant(text)


def test_timestamp_error_is_a_value_error() -> None:
    assert issubclass(TimestampError, ValueError)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-01-12T10:30:00Z", "2026-01-12T10:30:00.000000Z"),
        ("2026-01-12T12:30:00+02:00", "2026-01-12T10:30:00.000000Z"),
        ("2026-01-12T10:30:00.1Z", "2026-01-12T10:30:00.100000Z"),
        ("2026-01-12T10:30:00.123456+00:00", "2026-01-12T10:30:00.123456Z"),
        ("2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_normalize_gives_the_fixed_width_utc_form(text: str, stored: str) -> None:
    assert normalize(text) == stored
    assert STORED.match(normalize(text))


def test_normalize_is_idempotent() -> None:
    once = normalize("2026-01-12T12:30:00.25+02:00")
    assert normalize(once) == once


def test_to_stored_converts_aware_datetimes_to_utc() -> None:
    instant = datetime(2026, 1, 12, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert to_stored(instant) == "2026-01-12T10:30:00.000000Z"


def test_text_order_of_normalized_timestamps_is_the_order_of_the_instants() -> None:
    # Written with different offsets, so the raw text order differs from the real order.
    texts = [
        "2026-01-12T10:30:00+05:00",  # 05:30Z
        "2026-01-12T06:00:00Z",  # 06:00Z
        "2026-01-12T01:00:00-05:00",  # 06:00Z, the same instant as the line above
        "2026-01-12T01:00:00.000001-05:00",  # 06:00:00.000001Z
        "2026-01-11T23:00:00-12:00",  # 11:00Z
        "2026-01-13T00:00:00+14:00",  # 10:00Z
        "2025-12-31T23:59:59.999999Z",
        "2026-01-01T00:59:59+01:00",  # 2025-12-31T23:59:59Z
        "0999-06-01T00:00:00Z",
        "2026-01-12T10:30:00.000010Z",
        "2026-01-12T10:30:00.000009Z",
    ]
    by_instant = sorted(texts, key=parse_instant)
    by_text = sorted(texts, key=normalize)
    assert by_text == by_instant
    assert sorted(texts) != by_instant  # the raw strings alone would sort wrongly


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-01-12 10:30:00", "2026-01-12T10:30:00.000000Z"),  # SQLite datetime('now')
        ("2026-01-12T10:30:00", "2026-01-12T10:30:00.000000Z"),
        ("2026-01-12T10:30:00.123", "2026-01-12T10:30:00.123000Z"),
        ("2026-01-12", "2026-01-12T00:00:00.000000Z"),
        ("2026-01-12T12:30:00+02:00", "2026-01-12T10:30:00.000000Z"),
        (" 2026-01-12T10:30:00Z ", "2026-01-12T10:30:00.000000Z"),
    ],
)
def test_normalize_legacy_reads_naive_values_as_utc(text: str, stored: str) -> None:
    assert normalize_legacy(text) == stored


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "12/01/2026",
        "",
        "   ",
        "0001-01-01T00:00:00+01:00",  # out of range once converted to UTC
        None,
        1736676600,
        12.5,
    ],
)
def test_normalize_legacy_keeps_what_it_cannot_parse_unchanged(value: object) -> None:
    assert normalize_legacy(value) == value
    assert type(normalize_legacy(value)) is type(value)

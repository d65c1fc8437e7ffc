"""Timestamps as instants: parse ISO 8601 with a timezone, store in one fixed UTC form.

Every timestamp the server stores has the form ``2026-01-12T10:30:00.000000Z``: fixed
width and always UTC, so text comparison and ``ORDER BY`` agree with comparison of the
instants, whatever offset the client wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime

STORED_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class TimestampError(ValueError):
    """A timestamp is not ISO 8601 with a timezone."""


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries a timezone; return it in UTC.

    >>> parse_instant("2026-01-12T12:00:00+02:00").isoformat()
    '2026-01-12T10:00:00+00:00'
    """
    if not isinstance(text, str):
        raise TimestampError("timestamp must be an ISO 8601 string")
    candidate = text.strip()
    # "\x00": CPython's fromisoformat ignores a NUL and anything after it after a timezone.
    if len(candidate) < 10 or candidate[:4].isdigit() is False or "\x00" in candidate:
        raise TimestampError(f"not an ISO 8601 timestamp: {text[:64]!r}")
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise TimestampError(f"not an ISO 8601 timestamp: {text[:64]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimestampError(
            f"timestamp {text[:64]!r} has no timezone; add 'Z' or an offset like '+00:00'"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise TimestampError(f"timestamp {text[:64]!r} is out of range") from None


def to_stored(instant: datetime) -> str:
    """Format an aware datetime in the stored UTC form."""
    # Not strftime(STORED_FORMAT): glibc's %Y does not zero-pad years before 1000.
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def normalize(text: str) -> str:
    """Parse ``text`` (with timezone) and return the stored UTC form."""
    return to_stored(parse_instant(text))


def now_stored() -> str:
    """The current instant in the stored UTC form."""
    return to_stored(datetime.now(UTC))


def normalize_legacy(text: object) -> object:
    """Best-effort normalization of a timestamp written by the earlier implementation.

    Naive values there were written by SQLite's ``datetime('now')`` or by clients in UTC,
    so a missing timezone is read as UTC. A value that cannot be parsed is kept as it
    was: adopting an old database never drops or invents data.
    """
    if not isinstance(text, str) or not text.strip():
        return text
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return to_stored(parsed)
    except (OverflowError, ValueError):
        return text

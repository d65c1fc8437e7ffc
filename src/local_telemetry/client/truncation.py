"""Shorten oversized error text before sending, so a long traceback never costs the run.

The server refuses (422) an ``error_summary`` over 4 KiB and an ``error_details`` over
256 KiB of UTF-8 (``schemas.py``); a refused start or end would lose the whole run. The
SDK cuts such a value to fit, keeps its beginning, and appends a visible marker saying
how many bytes were dropped.
"""

from __future__ import annotations

from typing import Any

# Mirrors MAX_ERROR_SUMMARY_BYTES / MAX_ERROR_DETAILS_BYTES of the server's schemas.py
# (the SDK does not import server code: it must work against any server version).
FIELD_LIMITS: dict[str, int] = {"error_summary": 4 * 1024, "error_details": 256 * 1024}
MARKER = "\n… [truncated {dropped} bytes by local-telemetry SDK]"


def truncate_text(value: str, limit: int) -> str | None:
    """``value`` cut to at most ``limit`` bytes of UTF-8, marker included; ``None`` when
    it already fits."""
    if len(value) <= limit // 4:  # at most 4 bytes a character: fits for sure
        return None
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return None
    # The marker's own length depends on the count; the widest count is len(raw).
    room = limit - len(MARKER.format(dropped=len(raw)).encode("utf-8"))
    kept = raw[: max(room, 0)].decode("utf-8", "ignore")  # never split a character
    dropped = len(raw) - len(kept.encode("utf-8", "surrogatepass"))
    return kept + MARKER.format(dropped=dropped)


def truncate_fields(body: Any) -> int:
    """Truncate the oversized error fields of a run body (or a list of them) in place;
    return how many values were shortened."""
    bodies = body if isinstance(body, list) else [body]
    count = 0
    for item in bodies:
        if not isinstance(item, dict):
            continue
        for name, limit in FIELD_LIMITS.items():
            value = item.get(name)
            if isinstance(value, str):
                short = truncate_text(value, limit)
                if short is not None:
                    item[name] = short
                    count += 1
    return count

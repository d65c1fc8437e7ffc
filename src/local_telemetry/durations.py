"""Ages and spans written the way operators type them: ``30m``, ``24h``, ``90d``, ``2w``.

One parser for the alert windows, the CLI's ``--older-than`` and the settings that take
an age, so every place accepts the same forms.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw])\s*$", re.IGNORECASE)
FORMS = "30m, 24h, 90d or 2w"


def parse_duration(text: str, *, units: str = "mhdw") -> timedelta:
    """A whole number and one unit of ``units`` (of ``s m h d w``), longer than zero.

    >>> parse_duration("90d")
    datetime.timedelta(days=90)

    ``ValueError`` for anything else.
    """
    match = _DURATION.match(text)
    if match is None or match.group(2).lower() not in units:
        shown = ", ".join(f"1{unit}" for unit in units)
        raise ValueError(f"{text!r} is not a duration like {shown}")
    amount = int(match.group(1))
    if amount <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than 0")
    return amount * UNITS[match.group(2).lower()]


def describe_duration(span: timedelta) -> str:
    """The shortest ``parse_duration`` form of ``span`` (``timedelta(days=14)`` -> ``2w``)."""
    seconds = int(span.total_seconds())
    for unit in "wdhm":
        size = int(UNITS[unit].total_seconds())
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

"""KPIs of runs (``GET /api/v1/kpis``): one function per formula, and a group's assembly.

The store aggregates the inputs of each group (:class:`~local_telemetry.storage.base.
KpiInputs`); the functions here turn them into the KPIs. Rates are fractions in [0, 1],
``None`` when their denominator is 0. Day and week keys of a run are those of its
``start_time`` in an IANA time zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from local_telemetry.storage.base import KpiInputs

# ----- formulas -----


def rate(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``; ``None`` when ``denominator`` is 0."""
    return None if denominator == 0 else numerator / denominator


def resolution_rate(resolved: int, with_resolution: int) -> float | None:
    """Runs with resolution ``resolved`` / runs that have a ``resolution``."""
    return rate(resolved, with_resolution)


def escalation_rate(escalated: int, with_resolution: int) -> float | None:
    """Runs with resolution ``escalated`` / runs that have a ``resolution``."""
    return rate(escalated, with_resolution)


def completed_runs(status_counts: dict[str, int]) -> int:
    """Runs whose status is not ``running``."""
    return sum(n for status, n in status_counts.items() if status != "running")


def failure_rate(status_counts: dict[str, int]) -> float | None:
    """Runs with status ``failure`` / completed runs (status not ``running``)."""
    return rate(status_counts.get("failure", 0), completed_runs(status_counts))


def self_correction_rate(self_corrected: int, self_corrected_set: int) -> float | None:
    """Runs with ``self_corrected`` true / runs where ``self_corrected`` is set."""
    return rate(self_corrected, self_corrected_set)


def sla_hit(duration_ms: int | None, end_time: str | None, target_seconds: int | None) -> bool:
    """Whether a run counts as an SLA hit: it has an end, a target, a duration and
    ``duration_ms <= target_seconds * 1000``."""
    return (
        end_time is not None
        and target_seconds is not None
        and duration_ms is not None
        and duration_ms <= target_seconds * 1000
    )


def sla_hit_rate(hits: int, with_end_and_target: int) -> float | None:
    """SLA hits / runs with an ``end_time`` and an ``sla_target_seconds``."""
    return rate(hits, with_end_and_target)


def effective_duration_ms(
    duration_ms: int | None, supplied: bool, start_time: str, end_time: str | None
) -> int | None:
    """The client's ``duration_ms`` when it supplied one, else ``end_time - start_time``
    in whole milliseconds (rounded down), else ``None``."""
    if supplied:
        return duration_ms
    if end_time is None:
        return None
    delta = datetime.fromisoformat(end_time) - datetime.fromisoformat(start_time)
    return delta // timedelta(milliseconds=1)


def average(total: float, count: int) -> float | None:
    """``total / count``; ``None`` when ``count`` is 0 (avg duration, avg QC score)."""
    return None if count == 0 else total / count


def percentile(values: Sequence[int], q: float) -> int | None:
    """Nearest rank: the ``ceil(q * n)``-th smallest of ``n`` values (at least the 1st);
    ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def cost_per_resolved_run(cost_usd: float, resolved: int) -> float | None:
    """Total ``cost_usd`` of the group / its resolved runs; ``None`` with none resolved."""
    return None if resolved == 0 else cost_usd / resolved


def group_kpis(keys: dict[str, str], inputs: KpiInputs) -> dict[str, Any]:
    """One group of the response: its key fields, then every KPI."""
    durations = sorted(inputs.durations_ms)
    return {
        **keys,
        "total_runs": inputs.total_runs,
        "completed_runs": completed_runs(inputs.status_counts),
        "status_counts": dict(sorted(inputs.status_counts.items())),
        "resolution_rate": resolution_rate(inputs.resolved, inputs.with_resolution),
        "escalation_rate": escalation_rate(inputs.escalated, inputs.with_resolution),
        "failure_rate": failure_rate(inputs.status_counts),
        "self_correction_rate": self_correction_rate(
            inputs.self_corrected, inputs.self_corrected_set
        ),
        "sla_hit_rate": sla_hit_rate(inputs.sla_hits, inputs.sla_measured),
        "avg_duration_ms": average(sum(durations), len(durations)),
        "p50_duration_ms": percentile(durations, 0.5),
        "p95_duration_ms": percentile(durations, 0.95),
        "tokens_input": inputs.tokens_input,
        "tokens_output": inputs.tokens_output,
        "cost_usd": float(inputs.cost_usd),
        "cost_per_resolved_run": cost_per_resolved_run(inputs.cost_usd, inputs.resolved),
        "avg_qc_score": average(inputs.qc_score_sum, inputs.qc_count),
        "qc_count": inputs.qc_count,
    }


def groups_of(
    inputs: Mapping[tuple[str, ...], KpiInputs], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """The groups of ``Store.kpi_inputs`` (keys in ``group_by`` order) as the entries of
    ``GET /api/v1/kpis``, sorted by key."""
    return [
        group_kpis(dict(zip(group_by, key, strict=True)), inputs[key]) for key in sorted(inputs)
    ]


# ----- day and week keys -----


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` when there is none."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone: {name!r}") from None


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(utc_stamp: str, tz: ZoneInfo) -> date:
    """The date in ``tz`` of a stored UTC timestamp (or its prefix down to the minute)."""
    return datetime.fromisoformat(utc_stamp[:16] + "+00:00").astimezone(tz).date()


def day_key(day: date) -> str:
    """``YYYY-MM-DD``."""
    return day.isoformat()


def week_key(day: date) -> str:
    """ISO week ``YYYY-Www`` (ISO year, weeks start on Monday)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@lru_cache(maxsize=64)
def whole_hour_zone(name: str) -> bool:
    """Whether ``name``'s UTC offset is a whole number of hours on 1 January and 1 July
    of every year 1970-2100: then the UTC hour of a run decides its local day."""
    tz = zone(name)
    for year in range(1970, 2101):
        for month in (1, 7):
            offset = datetime(year, month, 1, tzinfo=UTC).astimezone(tz).utcoffset()
            if offset is None or offset % timedelta(hours=1):
                return False
    return True


def offset_spans(tz: ZoneInfo, first: datetime, last: datetime) -> list[tuple[datetime, int]]:
    """The UTC offsets (seconds) of ``tz`` from ``first`` to ``last`` (UTC): a list of
    (instant from which the offset applies, offset), the first from ``first``.

    Offsets are compared a day apart, then each change is bisected to the second (zones
    change offset at most a few times a year, never twice within a day).
    """

    def offset(instant: datetime) -> int:
        delta = instant.astimezone(tz).utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    spans = [(first, offset(first))]
    day = timedelta(days=1)
    at = first
    while at < last:
        following = min(at + day, last)
        if offset(following) != spans[-1][1]:
            low, high = at, following  # offset(low) is the current one, offset(high) not
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if offset(middle) == spans[-1][1]:
                    low = middle
                else:
                    high = middle
            spans.append((high.replace(microsecond=0), offset(high)))
        at = following
    return spans


def day_pieces(
    spans: list[tuple[datetime, int]], last: datetime, days: int = 1
) -> list[tuple[datetime, int | None]]:
    """The range of ``spans`` (see :func:`offset_spans`) up to ``last`` cut at every
    ``days``-th local midnight (those that occur once: none skipped or repeated by a
    change of offset): a list of (instant from which the piece applies, its one offset
    or ``None`` when the offset changes within it), the first from ``spans[0]``. A KPI
    query aggregates the pieces one by one; a local day is never cut in two."""
    first, first_offset = spans[0]
    widest = max(offset for _, offset in spans)
    cuts: list[datetime] = []
    step = timedelta(days=days)
    day = (first + timedelta(seconds=first_offset)).date()
    while day < date.max - step:
        day += step
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if midnight - timedelta(seconds=widest) > last:
            break
        found = []
        for index, (begin, offset) in enumerate(spans):
            at = midnight - timedelta(seconds=offset)
            if begin <= at and (index + 1 == len(spans) or at < spans[index + 1][0]):
                found.append(at)
        if len(found) == 1 and first < found[0] <= last:
            cuts.append(found[0])
    pieces: list[tuple[datetime, int | None]] = []
    ends: list[datetime | None] = [*cuts, None]
    for begin, end in zip([first, *cuts], ends, strict=True):
        within = [offset for at, offset in spans if at <= begin]
        changes = any(begin < at and (end is None or at < end) for at, _ in spans)
        pieces.append((begin, None if changes else within[-1]))
    return pieces

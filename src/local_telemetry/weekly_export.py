"""Scheduled weekly KPI export: one file per ISO week, written once, atomically.

Off unless ``TELEMETRY_WEEKLY_EXPORT_DIR`` is set. Every :data:`CHECK_INTERVAL_SECONDS`
the server asks :func:`week_due` which week is due and writes its file unless it
exists already:

* The schedule instant ``S`` is the most recent instant at or before now that is
  ``TELEMETRY_WEEKLY_EXPORT_WEEKDAY`` at ``TELEMETRY_WEEKLY_EXPORT_HOUR``:00 in the IANA
  zone ``TELEMETRY_WEEKLY_EXPORT_TZ``. A local hour that does not exist that day (the
  clocks jump forward over it) means the instant of the jump; an hour that occurs twice
  (the clocks fall back) means its first occurrence.
* The week due is the last complete ISO week (Monday 00:00 to the next Monday 00:00,
  local time in that zone) that ends at or before ``S``. So a server started after ``S``
  catches up at once; older weeks are never backfilled.
* The file ``<dir>/kpis-<YYYY-Www>.<csv|jsonl|parquet>`` holds the KPI groups of that
  week per ``agent_name`` and ``day`` (in that zone): the bytes of ``GET
  /api/v1/export/kpis?format=F&group_by=agent_name&group_by=day&tz=TZ&from=<week
  start>&to=<week end>``. An empty week still gets a file (CSV: the header only; JSON
  Lines: empty; Parquet: the schema and no rows).
* An existing file is never rewritten (re-runs and restarts are idempotent). A new file
  is written to a temporary file in the same directory, flushed and fsynced, renamed
  over the final name (``os.replace``) and the directory fsynced: a crash never leaves a
  partial file under the final name.
* A failure (directory missing and not creatable, not writable, disk full) is logged
  and retried at the next check; it never stops the server, which also starts when the
  directory cannot be created (the export is not worth refusing ingestion for, and a
  mount that appears later is picked up at the next check).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from local_telemetry import kpis
from local_telemetry.config import Settings
from local_telemetry.exports import flatten_kpi_groups, kpi_encoder
from local_telemetry.storage.base import KpiFilter, Store
from local_telemetry.timestamps import to_stored

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 60.0
WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
GROUP_BY: tuple[str, ...] = ("agent_name", "day")


class DueWeek(NamedTuple):
    """An ISO week to export: ``[start, end)`` as aware datetimes in the export's zone
    (Mondays 00:00 local time) and its key ``YYYY-Www``."""

    start: datetime
    end: datetime
    key: str


def local_instant(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """``day`` at ``hour``:00 in ``tz`` as a real instant (aware, in ``tz``).

    A wall time in a gap (clocks jump forward over it) becomes the instant of the jump;
    an ambiguous one (clocks fall back) its first occurrence. At midnight this is the
    first instant of ``day`` in ``tz``, the boundary the KPI day and week keys use.
    """
    wall = datetime.combine(day, time(hour), tzinfo=tz)  # fold=0: offset before a change
    return wall.astimezone(UTC).astimezone(tz)


def week_due(now: datetime, weekday: str | int, hour: int, tz: str | ZoneInfo) -> DueWeek:
    """The week the export at ``now`` writes: the last complete ISO week (local Monday
    00:00 to the next) ending at or before ``S``, the most recent ``weekday`` at
    ``hour``:00 in ``tz`` at or before ``now``.

    ``weekday``: a name (``"monday"`` ...) or 0 (Monday) to 6; ``now`` must be aware.
    Returns ``(week_start, week_end, week_key)``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0-23, not {hour}")
    zone = tz if isinstance(tz, ZoneInfo) else kpis.zone(tz)
    if isinstance(weekday, str):
        if weekday.lower() not in WEEKDAYS:
            raise ValueError(f"weekday must be one of {', '.join(WEEKDAYS)}, not {weekday!r}")
        target = WEEKDAYS.index(weekday.lower())
    elif 0 <= weekday <= 6:
        target = weekday
    else:
        raise ValueError(f"weekday must be 0 (Monday) to 6, not {weekday}")
    now_utc = now.astimezone(UTC)
    local_now = now_utc.astimezone(zone)
    day = local_now.date() - timedelta(days=(local_now.weekday() - target) % 7)
    scheduled = local_instant(day, hour, zone)
    # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    if scheduled.astimezone(UTC) > now_utc:
        scheduled = local_instant(day - timedelta(days=7), hour, zone)
    scheduled_day = scheduled.date()
    monday = scheduled_day - timedelta(days=scheduled_day.weekday())
    end = local_instant(monday, 0, zone)
    if end.astimezone(UTC) > scheduled.astimezone(UTC):  # defensive: exotic zones
        monday -= timedelta(days=7)
        end = local_instant(monday, 0, zone)
    first_day = monday - timedelta(days=7)
    return DueWeek(local_instant(first_day, 0, zone), end, kpis.week_key(first_day))


def export_path(directory: Path, week_key: str, export_format: str) -> Path:
    """``<directory>/kpis-<week_key>.<export_format>``."""
    return directory / f"kpis-{week_key}.{export_format}"


def week_file_chunks(store: Store, week: DueWeek, export_format: str, tz: str) -> list[bytes]:
    """The bytes of the week's KPI export (as ``GET /api/v1/export/kpis`` with
    ``group_by=agent_name&group_by=day``, ``tz``, ``from``/``to`` the week), in chunks."""
    kpi_filter = KpiFilter(start_time_from=to_stored(week.start), start_time_to=to_stored(week.end))
    inputs = store.kpi_inputs(kpi_filter, GROUP_BY, tz)
    columns, rows = flatten_kpi_groups(kpis.groups_of(inputs, GROUP_BY), GROUP_BY)
    encoder = kpi_encoder(export_format, columns, GROUP_BY)
    return [encoder.encode(rows), encoder.finish()]


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` so that ``path`` is either absent or complete.

    The data goes to a temporary file beside ``path`` (``.<name>.<random>.tmp``), is
    flushed and fsynced, renamed to ``path`` with ``os.replace``, then the directory is
    fsynced so the rename is durable. The temporary file is removed on failure.
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_week(
    store: Store, directory: Path, export_format: str, tz: str, week: DueWeek
) -> Path | None:
    """Write the week's file unless it exists; its path, or ``None`` when it existed.

    Blocking (a store query and file I/O): call it from a reader thread. Creates
    ``directory`` if missing; raises ``OSError`` when the file cannot be written.
    """
    path = export_path(directory, week.key, export_format)
    if path.exists():
        log.debug("weekly KPI export %s exists; nothing to write", path)
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f".{path.name}.*.tmp"):  # left by a crash mid-write
        stale.unlink(missing_ok=True)
    write_atomically(path, week_file_chunks(store, week, export_format, tz))
    log.info(
        "weekly KPI export: wrote %s (runs started from %s to %s, %s)",
        path,
        week.start.isoformat(),
        week.end.isoformat(),
        tz,
    )
    return path


class WeeklyExporter:
    """The work of the ``weekly-export`` job: at each check, write the due week's file
    if it is missing. Blocking; the server runs :meth:`check` on a reader thread."""

    def __init__(
        self,
        store: Store,
        directory: Path,
        export_format: str = "csv",
        weekday: str | int = "monday",
        hour: int = 6,
        tz: str = "UTC",
    ) -> None:
        self.store = store
        self.directory = directory
        self.export_format = export_format
        self.weekday = weekday
        self.hour = hour
        self.tz = tz
        self.zone = kpis.zone(tz)
        self._last_failure: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> WeeklyExporter | None:
        """The exporter the ``TELEMETRY_WEEKLY_EXPORT_*`` settings ask for; ``None`` when
        ``TELEMETRY_WEEKLY_EXPORT_DIR`` is unset (the export is off)."""
        if settings.weekly_export_dir is None:
            return None
        exporter = cls(
            store,
            Path(settings.weekly_export_dir),
            settings.weekly_export_format,
            settings.weekly_export_weekday,
            settings.weekly_export_hour,
            settings.weekly_export_tz,
        )
        log.info(
            "weekly KPI export on: %s files in %s, due %s %02d:00 %s",
            exporter.export_format,
            exporter.directory,
            settings.weekly_export_weekday,
            exporter.hour,
            exporter.tz,
        )
        return exporter

    def check(self, now: datetime | None = None) -> Path | None:
        """Write the file of the week due at ``now`` (default: the current instant) if it
        is missing; the path written, else ``None``. A write failure is logged (at error
        level the first time, then at debug level while it repeats) and ``None`` returned,
        so the next check retries."""
        week = week_due(
            datetime.now(UTC) if now is None else now, self.weekday, self.hour, self.zone
        )
        try:
            written = write_week(self.store, self.directory, self.export_format, self.tz, week)
        except OSError as exc:
            path = export_path(self.directory, week.key, self.export_format)
            failure = f"cannot write {path}: {exc}"
            level = logging.DEBUG if failure == self._last_failure else logging.ERROR
            log.log(level, "weekly KPI export failed: %s; retrying at the next check", failure)
            self._last_failure = failure
            return None
        if self._last_failure is not None:
            log.info("weekly KPI export works again (%s)", written or "file already there")
            self._last_failure = None
        return written

"""The weekly KPI export's calendar (``week_due``) and its file writer, against a real
SQLiteStore and real files."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pyarrow.parquet as pq
import pytest

from local_telemetry.exports import KPI_COLUMNS
from local_telemetry.kpis import week_key
from local_telemetry.storage.base import InsertRuns, Store
from local_telemetry.storage.sqlite import SQLiteStore
from local_telemetry.timestamps import normalize
from local_telemetry.weekly_export import (
    WEEKDAYS,
    DueWeek,
    WeeklyExporter,
    export_path,
    week_due,
    week_file_chunks,
    write_atomically,
    write_week,
)
from support import store_row

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def span(week: DueWeek) -> tuple[str, str, str]:
    """The week as (start UTC, end UTC, key), easy to compare."""
    return (
        week.start.astimezone(UTC).isoformat(),
        week.end.astimezone(UTC).isoformat(),
        week.key,
    )


# ----- week_due: the calendar -----


def test_exactly_at_the_schedule_the_previous_week_is_due() -> None:
    now = utc("2026-01-12T06:00:00+00:00")  # Monday 06:00 UTC
    week = week_due(now, "monday", 6, "UTC")
    assert span(week) == ("2026-01-05T00:00:00+00:00", "2026-01-12T00:00:00+00:00", "2026-W02")
    assert week.start.tzinfo == ZoneInfo("UTC")


def test_one_microsecond_before_the_schedule_the_week_before_is_due() -> None:
    now = utc("2026-01-12T06:00:00+00:00") - MICROSECOND
    week = week_due(now, "monday", 6, "UTC")
    assert span(week) == ("2025-12-29T00:00:00+00:00", "2026-01-05T00:00:00+00:00", "2026-W01")


def test_the_due_week_stays_until_the_next_schedule() -> None:
    expected = week_due(utc("2026-01-12T06:00:00+00:00"), "monday", 6, "UTC")
    for hours in (1, 24, 24 * 6, 24 * 7 - 1):
        now = utc("2026-01-12T06:00:00+00:00") + hours * HOUR
        assert week_due(now, "monday", 6, "UTC") == expected
    later = week_due(utc("2026-01-19T06:00:00+00:00"), "monday", 6, "UTC")
    assert later.key == "2026-W03"


@pytest.mark.parametrize(
    ("weekday", "key"),
    [
        ("monday", "2026-W02"),  # S = Mon 12 Jan 06:00: week 5-12 Jan
        ("tuesday", "2026-W02"),  # S = Tue 13 Jan
        ("wednesday", "2026-W02"),  # S = Wed 14 Jan 06:00, just passed
        ("thursday", "2026-W01"),  # S = Thu 8 Jan: the week ending 5 Jan
        ("friday", "2026-W01"),
        ("saturday", "2026-W01"),
        ("sunday", "2026-W01"),  # S = Sun 11 Jan: week 5-12 Jan is not complete
    ],
)
def test_every_weekday(weekday: str, key: str) -> None:
    now = utc("2026-01-14T06:00:00+00:00")  # a Wednesday
    week = week_due(now, weekday, 6, "UTC")
    assert week.key == key
    # the index form of the weekday means the same
    assert week_due(now, WEEKDAYS.index(weekday), 6, "UTC") == week
    # one microsecond earlier, Wednesday's schedule has not come yet: a week earlier
    before = week_due(now - MICROSECOND, weekday, 6, "UTC")
    expected_before = "2026-W01" if weekday == "wednesday" else key
    assert before.key == expected_before


@pytest.mark.parametrize(
    ("now", "start", "end", "key"),
    [
        # 2026 has 53 ISO weeks (1 January 2026 is a Thursday)
        ("2027-01-04T06:00:00+00:00", "2026-12-28", "2027-01-04", "2026-W53"),
        ("2027-01-11T06:00:00+00:00", "2027-01-04", "2027-01-11", "2027-W01"),
        # ISO week 1 of 2026 starts in December 2025
        ("2026-01-05T06:00:00+00:00", "2025-12-29", "2026-01-05", "2026-W01"),
        ("2025-12-29T06:00:00+00:00", "2025-12-22", "2025-12-29", "2025-W52"),
        # 2020 had 53 weeks; 2025-W01 starts on 30 December 2024
        ("2021-01-04T06:00:00+00:00", "2020-12-28", "2021-01-04", "2020-W53"),
        ("2025-01-06T06:00:00+00:00", "2024-12-30", "2025-01-06", "2025-W01"),
    ],
)
def test_year_boundary_weeks(now: str, start: str, end: str, key: str) -> None:
    week = week_due(utc(now), "monday", 6, "UTC")
    assert span(week) == (f"{start}T00:00:00+00:00", f"{end}T00:00:00+00:00", key)


def test_years_with_a_53rd_week() -> None:
    years = [y for y in range(2015, 2041) if date(y, 12, 28).isocalendar().week == 53]
    assert years == [2015, 2020, 2026, 2032, 2037]
    for year in years:
        first_monday_after = date(year + 1, 1, 1) + timedelta(
            days=(7 - date(year + 1, 1, 1).weekday()) % 7
        )
        now = datetime.combine(first_monday_after, datetime.min.time(), tzinfo=UTC) + 6 * HOUR
        week = week_due(now, "monday", 6, "UTC")
        assert week.key == f"{year}-W53"
        assert week.end.date() == first_monday_after


@pytest.mark.parametrize(
    ("tz", "now", "start_utc", "end_utc", "key", "hours"),
    [
        # Berlin, spring forward on Sunday 29 March 2026 (02:00 CET -> 03:00 CEST)
        (
            BERLIN,
            "2026-03-30T06:00:00+02:00",
            "2026-03-22T23:00:00+00:00",
            "2026-03-29T22:00:00+00:00",
            "2026-W13",
            167,
        ),
        # Berlin, fall back on Sunday 25 October 2026 (03:00 CEST -> 02:00 CET)
        (
            BERLIN,
            "2026-10-26T06:00:00+01:00",
            "2026-10-18T22:00:00+00:00",
            "2026-10-25T23:00:00+00:00",
            "2026-W43",
            169,
        ),
        # New York, spring forward on Sunday 8 March 2026
        (
            NEW_YORK,
            "2026-03-09T06:00:00-04:00",
            "2026-03-02T05:00:00+00:00",
            "2026-03-09T04:00:00+00:00",
            "2026-W10",
            167,
        ),
        # New York, fall back on Sunday 1 November 2026
        (
            NEW_YORK,
            "2026-11-02T06:00:00-05:00",
            "2026-10-26T04:00:00+00:00",
            "2026-11-02T05:00:00+00:00",
            "2026-W44",
            169,
        ),
    ],
)
def test_dst_weeks_span_local_midnights(
    tz: ZoneInfo, now: str, start_utc: str, end_utc: str, key: str, hours: int
) -> None:
    week = week_due(utc(now), "monday", 6, tz.key)
    assert span(week) == (start_utc, end_utc, key)
    assert week.end - week.start == timedelta(days=7)  # same tzinfo: wall-clock difference
    assert week.end.astimezone(UTC) - week.start.astimezone(UTC) == hours * HOUR
    for edge in (week.start, week.end):
        assert (edge.weekday(), edge.hour, edge.minute) == (0, 0, 0)
    # one microsecond before the schedule instant: the week before
    earlier = week_due(utc(now) - MICROSECOND, "monday", 6, tz)
    assert earlier.end == week.start


def test_a_nonexistent_hour_means_the_instant_the_clocks_jump() -> None:
    # New York, Sunday 8 March 2026: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    jump = utc("2026-03-08T07:00:00+00:00")
    assert week_due(jump, "sunday", 2, NEW_YORK).key == "2026-W09"  # 23 Feb - 2 Mar
    assert week_due(jump - MICROSECOND, "sunday", 2, NEW_YORK).key == "2026-W08"
    # Berlin, Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    jump = utc("2026-03-29T01:00:00+00:00")
    assert week_due(jump, "sunday", 2, BERLIN).key == "2026-W12"
    assert week_due(jump - MICROSECOND, "sunday", 2, BERLIN).key == "2026-W11"


def test_an_ambiguous_hour_means_its_first_occurrence() -> None:
    # New York, Sunday 1 November 2026: 01:00 EDT (05:00 UTC), then 01:00 EST (06:00 UTC).
    first = utc("2026-11-01T05:00:00+00:00")
    assert week_due(first, "sunday", 1, NEW_YORK).key == "2026-W43"
    assert week_due(first - MICROSECOND, "sunday", 1, NEW_YORK).key == "2026-W42"
    assert week_due(first + HOUR, "sunday", 1, NEW_YORK).key == "2026-W43"
    # Berlin, Sunday 25 October 2026: 02:00 CEST (00:00 UTC), then 02:00 CET (01:00 UTC).
    first = utc("2026-10-25T00:00:00+00:00")
    assert week_due(first, "sunday", 2, BERLIN).key == "2026-W42"
    assert week_due(first - MICROSECOND, "sunday", 2, BERLIN).key == "2026-W41"


def test_now_in_any_zone_means_the_same_instant() -> None:
    now = utc("2026-03-30T04:00:00+00:00")  # Monday 06:00 in Berlin
    expected = week_due(now, "monday", 6, "Europe/Berlin")
    assert week_due(now.astimezone(BERLIN), "monday", 6, "Europe/Berlin") == expected
    assert week_due(now.astimezone(NEW_YORK), "monday", 6, "Europe/Berlin") == expected
    assert expected.key == "2026-W13"


def reference_schedule(now: datetime, weekday: int, hour: int, tz: ZoneInfo) -> datetime:
    """S by brute force: the latest candidate day's ``hour``:00 (fold 0) not after now."""
    local_day = now.astimezone(tz).date()
    candidates = []
    for back in range(15):
        day = local_day - timedelta(days=back)
        if day.weekday() == weekday:
            instant = datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(UTC)
            if instant <= now:
                candidates.append(instant)
    return max(candidates)


@pytest.mark.parametrize("tz", [ZoneInfo("UTC"), BERLIN, NEW_YORK])
def test_invariants_over_a_year_of_hours(tz: ZoneInfo) -> None:
    start = utc("2026-01-01T00:00:00+00:00")
    for step in range(0, 24 * 372, 5):  # every 5 hours: every weekday and hour over time
        now = start + step * HOUR + timedelta(minutes=step % 60)
        weekday, hour = step % 7, step % 24
        week = week_due(now, weekday, hour, tz)
        schedule = reference_schedule(now, weekday, hour, tz)
        end, begin = week.end.astimezone(UTC), week.start.astimezone(UTC)
        assert end <= schedule <= now
        # the last complete week: the next one would end after S
        next_end = datetime.combine(
            week.end.date() + timedelta(days=7), datetime.min.time(), tzinfo=tz
        ).astimezone(UTC)
        assert next_end > schedule
        assert (week.start.weekday(), week.start.hour, week.start.minute) == (0, 0, 0)
        assert timedelta(hours=167) <= end - begin <= timedelta(hours=169)
        assert week.key == week_key(week.start.date())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        week_due(datetime(2026, 1, 12, 6), "monday", 6, "UTC")
    with pytest.raises(ValueError, match="someday"):
        week_due(utc("2026-01-12T06:00:00+00:00"), "someday", 6, "UTC")
    with pytest.raises(ValueError, match="weekday"):
        week_due(utc("2026-01-12T06:00:00+00:00"), 7, 6, "UTC")
    with pytest.raises(ValueError, match="hour"):
        week_due(utc("2026-01-12T06:00:00+00:00"), "monday", 24, "UTC")
    with pytest.raises(ValueError, match="time zone"):
        week_due(utc("2026-01-12T06:00:00+00:00"), "monday", 6, "Mars/Olympus")


# ----- the file writer -----


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    backend = SQLiteStore(tmp_path / "store.sqlite")
    backend.migrate()
    yield backend
    backend.close()


# Week 2026-W13 in Berlin: 2026-03-22T23:00Z to 2026-03-29T22:00Z (spring forward inside).
W13 = week_due(utc("2026-03-30T06:00:00+02:00"), "monday", 6, "Europe/Berlin")


def seed(store: Store) -> None:
    rows = [
        # inside: the first instant (Berlin Monday 00:00), a day boundary, the last second
        store_row("in-1", agent_name="a", start_time=normalize("2026-03-22T23:00:00Z")),
        store_row(
            "in-2",
            agent_name="a",
            start_time=normalize("2026-03-23T22:59:59Z"),
            status="failure",
        ),
        store_row(
            "in-3",
            agent_name="b",
            start_time=normalize("2026-03-29T21:59:59Z"),
            status="success",
            duration_ms=1200,
        ),
        # outside: a second before, the end itself, a week later
        store_row("out-1", agent_name="a", start_time=normalize("2026-03-22T22:59:59Z")),
        store_row("out-2", agent_name="b", start_time=normalize("2026-03-29T22:00:00Z")),
        store_row("out-3", agent_name="c", start_time=normalize("2026-04-01T10:00:00Z")),
    ]
    store.apply([InsertRuns(rows)])


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_file_holds_the_weeks_groups_per_agent_and_local_day(
    store: Store, tmp_path: Path
) -> None:
    seed(store)
    directory = tmp_path / "exports" / "nested"  # created when missing
    path = write_week(store, directory, "csv", "Europe/Berlin", W13)
    assert path == directory / "kpis-2026-W13.csv"
    assert files(directory) == ["kpis-2026-W13.csv"]  # no temporary file left
    reader = csv.DictReader(io.StringIO(path.read_text(), newline=""))
    rows = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[:2] == ["agent_name", "day"]
    assert [(r["agent_name"], r["day"], r["total_runs"]) for r in rows] == [
        ("a", "2026-03-23", "2"),  # 23:00Z and 22:59:59Z next day: both Monday in Berlin
        ("b", "2026-03-29", "1"),
    ]
    assert path.read_bytes() == b"".join(week_file_chunks(store, W13, "csv", "Europe/Berlin"))


def test_jsonl_and_parquet_hold_the_same_rows(store: Store, tmp_path: Path) -> None:
    seed(store)
    jsonl = write_week(store, tmp_path / "out", "jsonl", "Europe/Berlin", W13)
    parquet = write_week(store, tmp_path / "out", "parquet", "Europe/Berlin", W13)
    assert jsonl is not None
    assert parquet is not None
    lines = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    table = pq.read_table(parquet)
    assert table.to_pylist() == lines
    assert [(r["agent_name"], r["day"], r["total_runs"]) for r in lines] == [
        ("a", "2026-03-23", 2),
        ("b", "2026-03-29", 1),
    ]


def test_an_existing_file_is_left_untouched(store: Store, tmp_path: Path) -> None:
    seed(store)
    directory = tmp_path / "out"
    directory.mkdir()
    path = export_path(directory, "2026-W13", "csv")
    path.write_bytes(b"written by an earlier run")
    stamp = os.stat(path).st_mtime_ns
    exporter = WeeklyExporter(store, directory, "csv", "monday", 6, "Europe/Berlin")
    assert exporter.check(utc("2026-03-30T06:00:00+02:00")) is None
    assert path.read_bytes() == b"written by an earlier run"
    assert os.stat(path).st_mtime_ns == stamp
    assert files(directory) == ["kpis-2026-W13.csv"]


def test_checks_write_once_per_week(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "out"
    exporter = WeeklyExporter(store, directory, "jsonl", "monday", 6, "Europe/Berlin")
    now = utc("2026-03-30T06:00:00+02:00")
    first = exporter.check(now)
    assert first == directory / "kpis-2026-W13.jsonl"
    content, stamp = first.read_bytes(), os.stat(first).st_mtime_ns
    seed(store)  # new runs do not change a file already written
    assert exporter.check(now + HOUR) is None
    assert exporter.check(now + 24 * HOUR) is None
    assert first.read_bytes() == content
    assert os.stat(first).st_mtime_ns == stamp
    assert exporter.check(now + 7 * 24 * HOUR) == directory / "kpis-2026-W14.jsonl"
    assert files(directory) == ["kpis-2026-W13.jsonl", "kpis-2026-W14.jsonl"]


@pytest.mark.parametrize("export_format", ["csv", "jsonl", "parquet"])
def test_an_empty_week_still_gets_a_file(store: Store, tmp_path: Path, export_format: str) -> None:
    path = write_week(store, tmp_path / "out", export_format, "UTC", W13)
    assert path is not None
    content = path.read_bytes()
    if export_format == "csv":
        header = ",".join(["agent_name", "day", *KPI_COLUMNS]) + "\r\n"
        assert content == header.encode()
    elif export_format == "jsonl":
        assert content == b""
    else:
        table = pq.read_table(path)
        assert table.num_rows == 0
        assert table.schema.names == ["agent_name", "day", *KPI_COLUMNS]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "kpis-2026-W13.csv"

    def chunks() -> Iterator[bytes]:
        yield b"agent_name,day\r\n"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, chunks())
    assert files(tmp_path) == []
    write_atomically(path, iter([b"a", b"b"]))
    assert path.read_bytes() == b"ab"
    assert files(tmp_path) == ["kpis-2026-W13.csv"]


def test_a_temporary_file_left_by_a_crash_is_removed(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "out"
    directory.mkdir()
    (directory / ".kpis-2026-W13.csv.0123456789ab.tmp").write_bytes(b"half a fi")
    assert write_week(store, directory, "csv", "Europe/Berlin", W13) is not None
    assert files(directory) == ["kpis-2026-W13.csv"]


def test_a_failure_is_logged_and_retried_at_the_next_check(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "exports"
    directory.write_text("a file where the directory should be")
    exporter = WeeklyExporter(store, directory, "csv", "monday", 6, "Europe/Berlin")
    now = utc("2026-03-30T06:00:00+02:00")
    caplog.set_level(logging.DEBUG, logger="local_telemetry.weekly_export")
    assert exporter.check(now) is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "weekly KPI export failed" in errors[0].getMessage()
    assert str(directory / "kpis-2026-W13.csv") in errors[0].getMessage()
    caplog.clear()
    assert exporter.check(now + HOUR) is None  # the same failure again: not at error level
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    directory.unlink()
    assert exporter.check(now + 2 * HOUR) == directory / "kpis-2026-W13.csv"
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_from_settings_is_off_without_a_directory(store: Store, tmp_path: Path) -> None:
    from local_telemetry.config import load_settings

    assert WeeklyExporter.from_settings(load_settings(), store) is None
    exporter = WeeklyExporter.from_settings(
        load_settings(
            weekly_export_dir=tmp_path,
            weekly_export_format="PARQUET",
            weekly_export_weekday="Friday",
            weekly_export_hour=23,
            weekly_export_tz="America/New_York",
        ),
        store,
    )
    assert exporter is not None
    assert (exporter.export_format, exporter.weekday, exporter.hour, exporter.tz) == (
        "parquet",
        "friday",
        23,
        "America/New_York",
    )

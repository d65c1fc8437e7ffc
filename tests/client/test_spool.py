"""The disk spool keeps every appended item until acknowledged, across crashes and processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_telemetry.client.spool import (
    Spool,
    SpoolBatch,
    default_spool_root,
    spool_directory,
)

URL = "http://localhost:8765"


def items(prefix: str, count: int, size: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}-{index}", "pad": "x" * size} for index in range(count)]


def ids(batch: SpoolBatch | None) -> list[str]:
    assert batch is not None
    return [item["event_id"] for item in batch.items]


def spool_files(spool: Spool) -> list[Path]:
    return sorted(spool.directory.glob("spool-*.jsonl"))


def drain(spool: Spool) -> list[str]:
    """Claim and acknowledge everything claimable, in claim order."""
    delivered: list[str] = []
    while (batch := spool.claim()) is not None:
        delivered += ids(batch)
        batch.ack(len(batch.items))
    return delivered


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(root: Path) -> Spool:
    return Spool(root, URL)


CHILD_PRELUDE = "import json, os, sys, time\nfrom local_telemetry.client.spool import Spool\n"


def start_child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line, f"child exited early with {child.wait()}"
    return line


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


# ----- append, claim, ack -----


def test_claim_gives_appended_items_in_order(spool: Spool) -> None:
    assert spool.append(items("a", 3)) == 3
    assert spool.append(items("b", 2)) == 2

    batch = spool.claim()

    assert ids(batch) == ["a-0", "a-1", "a-2", "b-0", "b-1"]
    assert batch is not None
    assert batch.items[0] == {"event_id": "a-0", "pad": ""}


def test_full_ack_deletes_the_file_and_releases_it(spool: Spool) -> None:
    spool.append(items("a", 3))
    batch = spool.claim()
    assert batch is not None

    batch.ack(3)

    assert batch.closed
    assert spool_files(spool) == []
    assert spool.claim() is None
    assert spool.pending_count() == 0


def test_release_keeps_every_unacknowledged_item(spool: Spool) -> None:
    spool.append(items("a", 3))
    batch = spool.claim()
    assert batch is not None
    batch.release()

    assert ids(spool.claim()) == ["a-0", "a-1", "a-2"]


def test_append_of_nothing_creates_no_file(spool: Spool) -> None:
    assert spool.append([]) == 0
    assert spool_files(spool) == []
    assert spool.claim() is None


def test_items_that_are_not_json_are_refused_before_writing(spool: Spool) -> None:
    with pytest.raises(TypeError):
        spool.append([{"event_id": "fine"}, {"event_id": object()}])

    assert spool.pending_count() == 0


def test_partial_ack_survives_reopening(root: Path, spool: Spool) -> None:
    spool.append(items("a", 5))
    batch = spool.claim()
    assert batch is not None
    batch.ack(2)
    batch.release()
    del spool

    reopened = Spool(root, URL)

    assert reopened.pending_count() == 3
    assert ids(reopened.claim()) == ["a-2", "a-3", "a-4"]


def test_ack_is_cumulative_and_never_goes_back(root: Path, spool: Spool) -> None:
    spool.append(items("a", 5))
    batch = spool.claim()
    assert batch is not None

    batch.ack(2)
    batch.ack(1)  # already covered: nothing changes
    batch.ack(4)
    batch.release()

    assert ids(Spool(root, URL).claim()) == ["a-4"]


def test_ack_outside_the_batch_or_after_release_is_an_error(spool: Spool) -> None:
    spool.append(items("a", 2))
    batch = spool.claim()
    assert batch is not None

    with pytest.raises(ValueError, match="outside"):
        batch.ack(3)
    with pytest.raises(ValueError, match="outside"):
        batch.ack(-1)
    batch.release()
    with pytest.raises(RuntimeError):
        batch.ack(1)


def test_batch_is_a_context_manager_that_releases(spool: Spool) -> None:
    spool.append(items("a", 2))
    claimed = spool.claim()
    assert claimed is not None

    with claimed as batch:
        batch.ack(1)

    assert batch.closed
    assert ids(spool.claim()) == ["a-1"]


def test_torn_last_line_is_ignored_and_cut_before_acks(spool: Spool) -> None:
    spool.append(items("a", 3))
    spool.close()
    [path] = spool_files(spool)
    with path.open("ab") as file:
        file.write(b'{"event_id":"torn-by-a-cr')  # a writer killed mid-append
    assert spool.pending_count() == 3

    batch = spool.claim()
    assert ids(batch) == ["a-0", "a-1", "a-2"]
    assert batch is not None
    batch.ack(1)
    batch.release()

    # The ack line starts on a line of its own: the torn bytes are gone.
    assert b"torn" not in path.read_bytes()
    assert path.read_bytes().endswith(b"\n#ack 1\n")
    assert ids(spool.claim()) == ["a-1", "a-2"]


def test_unreadable_line_in_the_middle_is_skipped(spool: Spool) -> None:
    spool.append(items("a", 1))
    spool.close()
    [path] = spool_files(spool)
    with path.open("ab") as file:
        file.write(b"\x00\x00garbage\n[1,2]\n")
    later = Spool(spool.directory.parent, URL)
    later.append(items("b", 1))
    later.close()

    assert drain(spool) == ["a-0", "b-0"]
    assert spool_files(spool) == []


def test_file_with_everything_acknowledged_is_deleted_on_claim(spool: Spool) -> None:
    spool.append(items("a", 2))
    spool.close()
    [path] = spool_files(spool)
    with path.open("ab") as file:
        file.write(b"#ack 2\n")  # as left by a crash between the last ack and the delete

    assert spool.claim() is None
    assert not path.exists()


def test_pending_count_covers_every_writer_and_ignores_acknowledged(root: Path) -> None:
    first, second = Spool(root, URL), Spool(root, URL)
    first.append(items("a", 3))
    second.append(items("b", 4))
    assert first.pending_count() == 7

    batch = first.claim()  # its own file
    assert ids(batch) == ["a-0", "a-1", "a-2"]
    assert batch is not None
    batch.ack(2)

    assert second.pending_count() == 5


# ----- size cap, rotation, separation -----


def test_size_cap_refuses_what_does_not_fit(root: Path) -> None:
    spool = Spool(root, URL, max_bytes=1000)
    line_size = len(json.dumps(items("a", 1, size=60)[0], separators=(",", ":"))) + 1

    written = spool.append(items("a", 20, size=60))

    assert written == 1000 // line_size
    assert spool.append(items("b", 1, size=60)) == 0
    assert sum(path.stat().st_size for path in spool.directory.iterdir()) <= 1000
    assert spool.pending_count() == written


def test_size_cap_frees_up_once_replayed(root: Path) -> None:
    spool = Spool(root, URL, max_bytes=1000)
    written = spool.append(items("a", 20, size=60))

    assert len(drain(spool)) == written
    assert spool.append(items("b", 3, size=60)) == 3


def test_size_cap_counts_files_of_other_writers(root: Path) -> None:
    Spool(root, URL, max_bytes=1000).append(items("a", 20, size=60))

    assert Spool(root, URL, max_bytes=1000).append(items("b", 1, size=60)) == 0


def test_spools_are_kept_per_api_url(root: Path) -> None:
    local, remote = Spool(root, URL), Spool(root, "http://other:8765")
    local.append(items("local", 2))
    remote.append(items("remote", 1))

    assert local.directory != remote.directory
    assert drain(remote) == ["remote-0"]
    assert drain(local) == ["local-0", "local-1"]
    assert Spool(root, URL + "/").directory == local.directory
    assert spool_directory(root, URL) == local.directory


def test_rotated_files_replay_in_the_order_written(root: Path) -> None:
    spool = Spool(root, URL, max_file_bytes=200)
    for index in range(30):
        spool.append([{"event_id": f"a-{index}", "pad": "x" * 20}])
    assert len(spool_files(spool)) > 5

    assert drain(spool) == [f"a-{index}" for index in range(30)]


def test_directory_and_files_are_private(spool: Spool) -> None:
    spool.append(items("a", 1))

    assert spool.directory.stat().st_mode & 0o777 == 0o700
    assert spool_files(spool)[0].stat().st_mode & 0o777 == 0o600


def test_deleted_spool_directory_is_recreated(spool: Spool) -> None:
    spool.append(items("a", 1))
    for path in spool.directory.iterdir():
        path.unlink()
    spool.directory.rmdir()

    assert spool.append(items("b", 1)) == 1
    assert drain(spool) == ["b-0"]


# ----- locking between writers and replayers -----


def test_a_live_writers_file_is_not_claimed_by_others(root: Path) -> None:
    writer, replayer = Spool(root, URL), Spool(root, URL)
    writer.append(items("a", 2))

    assert replayer.claim() is None
    writer.close()
    assert ids(replayer.claim()) == ["a-0", "a-1"]


def test_claim_takes_the_callers_own_open_file(spool: Spool) -> None:
    spool.append(items("a", 1))
    batch = spool.claim()
    assert ids(batch) == ["a-0"]

    spool.append(items("b", 1))  # goes to a new file, behind the claimed one
    assert batch is not None
    batch.ack(1)
    assert drain(spool) == ["b-0"]


def test_a_claimed_file_is_not_claimed_twice(root: Path) -> None:
    Spool(root, URL).append(items("a", 1))
    first, second = Spool(root, URL), Spool(root, URL)

    batch = first.claim()

    assert ids(batch) == ["a-0"]
    assert second.claim() is None


def test_later_files_of_a_busy_writer_wait_but_other_writers_do_not(root: Path) -> None:
    writer = Spool(root, URL, max_file_bytes=50)
    writer.append(items("a", 1, size=40))
    writer.append(items("a2", 1, size=40))  # second file of the same writer
    writer.close()
    other = Spool(root, URL)
    other.append(items("b", 1))
    other.close()
    first_replayer, second_replayer = Spool(root, URL), Spool(root, URL)

    held = first_replayer.claim()
    assert ids(held) == ["a-0"]
    # a2-0 must not overtake a-0, which is still being sent: only b-0 is claimable.
    assert ids(second_replayer.claim()) == ["b-0"]
    assert held is not None
    held.ack(1)
    assert ids(second_replayer.claim()) == ["a2-0"]


def test_abandoned_temporary_file_is_removed_young_one_kept(spool: Spool) -> None:
    old = spool.directory / ".new-spool-00000000000000000001-1-dead.jsonl"
    young = spool.directory / ".new-spool-00000000000000000002-1-beef.jsonl"
    old.touch()
    young.touch()
    os.utime(old, (time.time() - 3600, time.time() - 3600))

    spool.claim()

    assert not old.exists()
    assert young.exists()


# ----- processes and crashes -----


def test_two_processes_never_claim_the_same_file(root: Path) -> None:
    for prefix in ("a", "b"):
        writer = Spool(root, URL)
        writer.append(items(prefix, 2))
        writer.close()
    holder = (
        "batch = Spool(sys.argv[1], sys.argv[2]).claim()\n"
        "print(json.dumps(batch and batch.items), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    children = []
    try:
        claimed = []
        for _ in range(3):
            children.append(start_child(holder, str(root), URL))
            claimed.append(json.loads(read_line(children[-1])))
    finally:
        for child in children:
            child.communicate("\n", timeout=30)

    assert sorted(batch[0]["event_id"] for batch in claimed[:2]) == ["a-0", "b-0"]
    assert claimed[2] is None  # both files held by the first two processes


def test_concurrent_replayers_deliver_each_item_once_in_writer_order(root: Path) -> None:
    writers, per_writer = 8, 40
    for writer_index in range(writers):
        writer = Spool(root, URL, max_file_bytes=400)
        for sequence in range(per_writer):
            writer.append([{"event_id": f"w{writer_index}-{sequence}", "pad": "x" * 20}])
        writer.close()
    replayer = (
        "spool = Spool(sys.argv[1], sys.argv[2])\n"
        "claims = []\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "while True:\n"
        "    batch = spool.claim()\n"
        "    if batch is None:\n"
        "        if spool.pending_count() == 0:\n"
        "            break\n"
        "        time.sleep(0.002)\n"
        "        continue\n"
        "    claims.append([time.monotonic_ns(), [i['event_id'] for i in batch.items]])\n"
        "    time.sleep(0.003)\n"
        "    batch.ack(len(batch.items))\n"
        "print(json.dumps(claims))\n"
    )
    children = [start_child(replayer, str(root), URL) for _ in range(4)]
    assert [read_line(child) for child in children] == ["ready"] * len(children)
    for child in children:  # start them together
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    per_child = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    claims = sorted(claim for child_claims in per_child for claim in child_claims)

    delivered = [event_id for _, batch in claims for event_id in batch]
    expected = [f"w{w}-{s}" for w in range(writers) for s in range(per_writer)]
    assert sorted(delivered) == sorted(expected)  # each item exactly once
    for writer_index in range(writers):
        prefix = f"w{writer_index}-"
        sequence = [
            int(event_id[len(prefix) :]) for event_id in delivered if event_id.startswith(prefix)
        ]
        assert sequence == list(range(per_writer))
    assert sum(1 for child_claims in per_child if child_claims) >= 2  # they did run together


def test_entry_survives_sigkill_right_after_append(root: Path) -> None:
    child = start_child(
        "spool = Spool(sys.argv[1], sys.argv[2])\n"
        "print(spool.append([{'event_id': 'survivor'}]), flush=True)\n"
        "time.sleep(60)\n",
        str(root),
        URL,
    )
    assert read_line(child) == "1"
    kill(child)

    assert drain(Spool(root, URL)) == ["survivor"]


def test_ack_survives_sigkill_and_nothing_acknowledged_comes_back(root: Path) -> None:
    Spool(root, URL).append(items("a", 5))
    child = start_child(
        "batch = Spool(sys.argv[1], sys.argv[2]).claim()\n"
        "batch.ack(2)\n"
        "print(len(batch.items), flush=True)\n"
        "time.sleep(60)\n",
        str(root),
        URL,
    )
    assert read_line(child) == "5"
    kill(child)  # the lock dies with the process

    assert drain(Spool(root, URL)) == ["a-2", "a-3", "a-4"]


def test_sigkill_while_appending_loses_only_unreturned_items(root: Path) -> None:
    child = start_child(
        "spool = Spool(sys.argv[1], sys.argv[2], max_file_bytes=4096)\n"
        "index = 0\n"
        "while True:\n"
        "    spool.append([{'event_id': f'a-{index}', 'pad': 'x' * 500}])\n"
        "    print(index, flush=True)\n"
        "    index += 1\n",
        str(root),
        URL,
    )
    returned = [int(read_line(child)) for _ in range(50)]
    kill(child)

    delivered = drain(Spool(root, URL))
    assert delivered == [f"a-{index}" for index in range(len(delivered))]
    assert len(delivered) >= len(returned)


def test_forked_child_writes_its_own_file_and_leaves_the_parent_locked(
    root: Path, spool: Spool
) -> None:
    spool.append(items("parent", 1))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0 if spool.append(items("child", 1)) == 1 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    spool.append(items("parent-again", 1))
    replayer = Spool(root, URL)
    assert len(spool_files(spool)) == 2

    # The child's file is free; the parent's is still locked by the parent.
    child_batch = replayer.claim()
    assert ids(child_batch) == ["child-0"]
    assert replayer.claim() is None
    assert child_batch is not None
    child_batch.ack(1)
    assert ids(spool.claim()) == ["parent-0", "parent-again-0"]


# ----- durability -----


def fsync_spy(monkeypatch: pytest.MonkeyPatch) -> list[os.stat_result]:
    """Record the ``fstat`` of every descriptor given to ``os.fsync``, then really fsync."""
    calls: list[os.stat_result] = []
    real_fsync: Callable[[int], None] = os.fsync

    def spy(descriptor: int) -> None:
        calls.append(os.fstat(descriptor))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_append_fsyncs_the_written_data_and_the_new_name(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fsync_spy(monkeypatch)

    spool.append(items("a", 2))

    [path] = spool_files(spool)
    written = path.stat()
    assert any(
        call.st_ino == written.st_ino and call.st_size == written.st_size for call in calls
    ), "the file was not fsync'd after the write"
    assert any(call.st_ino == spool.directory.stat().st_ino for call in calls), (
        "the directory was not fsync'd after the file was created"
    )
    calls.clear()
    spool.append(items("b", 1))
    assert [call.st_size for call in calls] == [path.stat().st_size]


def test_ack_is_fsynced_before_it_returns(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    spool.append(items("a", 3))
    batch = spool.claim()
    assert batch is not None
    calls = fsync_spy(monkeypatch)

    batch.ack(1)

    [path] = spool_files(spool)
    assert [(call.st_ino, call.st_size) for call in calls] == [
        (path.stat().st_ino, path.stat().st_size)
    ]
    assert path.read_bytes().endswith(b"#ack 1\n")


def fail_after_partial_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``os.write`` stores 3 bytes, the one after fails as a full disk would."""
    real_write = os.write
    calls = 0

    def write(descriptor: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(descriptor, bytes(data[:3]))
        monkeypatch.setattr(os, "write", real_write)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_failed_append_reports_nothing_written_and_spoils_nothing(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append(items("a", 1))
    fail_after_partial_write(monkeypatch)

    assert spool.append(items("lost", 2)) == 0
    assert spool.append(items("b", 1)) == 1

    assert drain(spool) == ["a-0", "b-0"]


def test_failed_ack_is_cut_back_so_the_next_ack_counts(
    root: Path, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append(items("a", 4))
    batch = spool.claim()
    assert batch is not None
    fail_after_partial_write(monkeypatch)

    batch.ack(1)  # logged, not raised: the item may be sent again later
    batch.ack(2)
    batch.release()

    assert ids(Spool(root, URL).claim()) == ["a-2", "a-3"]


# ----- location -----


def test_default_root_prefers_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TELEMETRY_SPOOL_DIR", str(tmp_path / "here"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    assert default_spool_root() == tmp_path / "here"


def test_default_root_uses_the_xdg_cache_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TELEMETRY_SPOOL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    assert default_spool_root() == tmp_path / "cache" / "local-telemetry" / "spool"


@pytest.mark.parametrize("xdg", [None, "", "relative/cache"])
def test_default_root_falls_back_to_home_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg: str | None
) -> None:
    monkeypatch.delenv("TELEMETRY_SPOOL_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert default_spool_root() == tmp_path / ".cache" / "local-telemetry" / "spool"

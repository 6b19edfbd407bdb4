"""Backup decisions without a server: retention, restore-point choice, WAL naming, the emulator's checkpoints,
and the archive command line PostgreSQL is given."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.backup.catalog import BackupError, BackupInfo
from harness.backup.restore import pick_backup
from harness.backup.retention import plan_retention
from harness.services.aws_persist import CHECKPOINT_DELAY_S, CHECKPOINT_PATH, Checkpointer
from harness.services.wal_archive import archive_settings, segment_of, unpack, wal_key

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def backup(backup_id: str, age: timedelta, start_wal: str) -> BackupInfo:
    return BackupInfo(
        backup_id=backup_id,
        kind="automated",
        created_at=(NOW - age).isoformat(),
        region="us-east-2",
        size_bytes=1,
        start_wal=start_wal,
        restore_point=backup_id,
        restore_point_lsn="0/0",
        restore_point_wal=start_wal,
        database="dbunit",
        server_version="18",
        files={},
        checksums={},
    )


def test_retention_expires_backups_older_than_seven_days_and_the_wal_before_the_oldest_kept():
    backups = [
        backup("a", timedelta(days=9), "000000010000000000000002"),
        backup("b", timedelta(days=6), "000000010000000000000005"),
        backup("c", timedelta(hours=1), "000000010000000000000009"),
    ]
    wal = [f"0000000100000000000000{n:02X}" for n in range(1, 12)] + ["00000002.history"]
    plan = plan_retention(backups, wal, NOW)
    assert plan.expired_backups == ["a"]
    assert plan.expired_wal == [f"0000000100000000000000{n:02X}" for n in range(1, 5)]


def test_retention_never_deletes_the_last_backup_however_old():
    backups = [
        backup("a", timedelta(days=30), "000000010000000000000002"),
        backup("b", timedelta(days=20), "00000001000000000000000A"),
    ]
    plan = plan_retention(backups, ["000000010000000000000003", "00000001000000000000000B"], NOW)
    assert plan.expired_backups == ["a"]
    assert plan.expired_wal == ["000000010000000000000003"]


def test_segment_order_spans_timelines():
    # After a promotion the timeline changes; the position (log, segment) still orders the archive.
    backups = [backup("b", timedelta(hours=1), "000000020000000000000005")]
    plan = plan_retention(backups, ["000000010000000000000004", "000000020000000000000005"], NOW)
    assert plan.expired_wal == ["000000010000000000000004"]


def test_a_point_in_time_restore_starts_from_the_newest_backup_before_the_target():
    backups = [backup("a", timedelta(days=2), "0" * 24), backup("b", timedelta(days=1), "0" * 24)]
    assert pick_backup(backups, NOW - timedelta(hours=30)).backup_id == "a"
    assert pick_backup(backups, NOW).backup_id == "b"
    with pytest.raises(BackupError, match="no backup at or before"):
        pick_backup(backups, NOW - timedelta(days=3))


def test_archived_segments_are_gzipped_and_checked_against_their_digest():
    import gzip
    import hashlib

    data = b"\x00" * 1000 + b"wal"
    assert segment_of(wal_key("000000010000000000000003")) == "000000010000000000000003"
    assert unpack(gzip.compress(data), hashlib.sha256(data).hexdigest()) == data
    with pytest.raises(ValueError, match="does not match"):
        unpack(gzip.compress(data + b"x"), hashlib.sha256(data).hexdigest())


def test_the_archive_command_quotes_paths_for_postgresql_conf():
    settings = archive_settings(Path("/state/it's here/wal-archive.json"))
    assert settings["archive_mode"] == "on"
    command = settings["archive_command"]
    assert command.startswith("'") and command.endswith("'")
    assert "it''s here" in command and "%p %f" in command


class Timers:
    """Deferred callbacks that run when the test fires them, not when a wall clock says."""

    def __init__(self) -> None:
        self.waiting: list[Timer] = []

    def schedule(self, delay_s: float, callback) -> "Timer":
        timer = Timer(delay_s, callback)
        self.waiting.append(timer)
        return timer

    def fire(self) -> None:
        due, self.waiting = self.waiting, []
        for timer in due:
            if not timer.cancelled:
                timer.callback()


class Timer:
    def __init__(self, delay_s: float, callback) -> None:
        self.delay_s, self.callback, self.cancelled = delay_s, callback, False

    def cancel(self) -> None:
        self.cancelled = True


def test_the_emulator_checkpoints_after_a_change_and_on_request_but_not_after_reads():
    saves: list[int] = []
    timers = Timers()
    checkpointer = Checkpointer(lambda: saves.append(1), timers.schedule)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    wrapped = checkpointer.wrap(app)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    async def scenario():
        await wrapped({"type": "http", "method": "GET", "path": "/"}, receive, send)
        timers.fire()
        reads = len(saves)
        await wrapped({"type": "http", "method": "POST", "path": "/"}, receive, send)
        await wrapped({"type": "http", "method": "PUT", "path": "/b/k"}, receive, send)
        assert [t.delay_s for t in timers.waiting] == [CHECKPOINT_DELAY_S]
        timers.fire()
        after_writes = len(saves)
        await wrapped({"type": "http", "method": "POST", "path": CHECKPOINT_PATH}, receive, send)
        return reads, after_writes, len(saves)

    reads, after_writes, after_request = asyncio.run(scenario())
    # Two changes in a row are saved once; the explicit checkpoint saves at once and answers 200.
    assert (reads, after_writes, after_request) == (0, 1, 2)
    assert sent[-2]["status"] == 200

"""Backups and restores on the real stack: WAL archived to the emulator's S3, pg_basebackup snapshots copied
to a second region, restores to new instances validated table by table, corrupted backups refused, and
nothing left running by a restore, whether it succeeded or failed half-way."""

import dataclasses
import gzip
import io
import json
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from harness.backup.catalog import BackupError, BackupInfo, list_backups
from harness.backup.restore import drop_restore, restore, restores_root, running_restores
from harness.backup.retention import apply_retention
from harness.backup.snapshot import create_backup, sha256_file, wait_archived
from harness.backup.unit import backup_target, restore_spec
from harness.checklist.backup_probes import automated_backups, backup_schedule, manual_snapshot, retention
from harness.checklist.model import CheckStatus

pytestmark = pytest.mark.integration


def postgres_processes_under(root) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in cmdline and str(root) in cmdline:
            found.append(proc.info["pid"])
    return found


@pytest.fixture(scope="module")
def target(stack, harness_settings):
    if stack.backend != "embedded":
        pytest.skip("backups are made by the harness only for the embedded stack")
    return backup_target(harness_settings, stack)


@pytest.fixture(scope="module")
def spec(stack, harness_settings):
    return restore_spec(harness_settings, stack)


@pytest.fixture(scope="module")
def acks(stack):
    """A table of acknowledged writes: (id, committed_at as the server saw it)."""
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS drill")
        conn.execute("DROP TABLE IF EXISTS drill.acks")
        conn.execute("CREATE TABLE drill.acks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    yield "drill.acks"
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA drill CASCADE")


@pytest.fixture(scope="module")
def snapshot(target, acks, stack) -> BackupInfo:
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO drill.acks (id) SELECT g FROM generate_series(1, 100) g")
    return create_backup(target, "manual")


@pytest.fixture
def no_leftovers(harness_settings):
    before = set(p.name for p in running_restores(harness_settings.state_dir))
    yield
    after = set(p.name for p in running_restores(harness_settings.state_dir)) - before
    for name in after:
        drop_restore(restores_root(harness_settings.state_dir) / name)
    assert not after, f"restores left behind: {after}"
    assert not postgres_processes_under(restores_root(harness_settings.state_dir))


def test_a_snapshot_is_stored_encrypted_in_two_regions_with_its_checksums(target, snapshot):
    primary = [b.backup_id for b in list_backups(target.s3(), target.bucket)]
    copies = [b.backup_id for b in list_backups(target.s3(target.copy_region), target.copy_bucket)]
    assert snapshot.backup_id in primary and snapshot.backup_id in copies
    assert snapshot.copied_to == [target.copy_region]
    assert snapshot.checksums["drill.acks"]["rows"] == 100
    head = target.s3().head_object(Bucket=target.bucket, Key=snapshot.key("base.tar.gz"))
    assert head.get("ServerSideEncryption") == "aws:kms"


def test_a_snapshot_restores_to_a_new_instance_that_matches_every_table(stack, snapshot, no_leftovers):
    with stack.direct.connect(autocommit=True) as conn:
        # Written after the snapshot: the restore must not have it (drill.acks' checksum would differ).
        conn.execute("INSERT INTO drill.acks (id) VALUES (1000)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "backup",
            "restore",
            "--snapshot",
            snapshot.backup_id,
            "--drop",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    checks = {c["name"]: c for c in summary["validation"]["checks"]}
    assert summary["validation"]["passed"] and not summary["running"]
    assert f":{stack.direct.port}/" not in summary["endpoint"]
    assert "every checksum matches" in checks["table checksums"]["detail"]
    assert {"pg_amcheck", "audit log"} <= set(checks)


def test_a_point_in_time_restore_has_every_write_acknowledged_before_the_target_and_none_after(
    target, spec, snapshot, stack, no_leftovers
):
    with stack.direct.connect(autocommit=True) as conn:
        for i in range(2000, 2010):
            conn.execute("INSERT INTO drill.acks (id) VALUES (%s)", (i,))
        target_time = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        time.sleep(0.05)
        for i in range(3000, 3010):
            conn.execute("INSERT INTO drill.acks (id) VALUES (%s)", (i,))
        segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        wait_archived(conn, segment)
    restored = restore(target, spec, to_time=target_time)
    try:
        with restored.endpoint.connect() as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM drill.acks WHERE id >= 2000")}
        assert ids == set(range(2000, 2010))
    finally:
        drop_restore(restored.directory)


def test_a_restore_with_fewer_connections_than_its_source_still_comes_up(target, spec, snapshot, no_leftovers):
    """The source ran with more max_connections (a larger class, as a capacity sweep restarts it): a hot
    standby would pause recovery for good on that; the restore must promote at its own size."""
    smaller = dataclasses.replace(spec, sizing=dataclasses.replace(spec.sizing, max_connections=20), timeout_s=60)
    restored = restore(target, smaller, snapshot=snapshot.backup_id)
    try:
        with restored.endpoint.connect() as conn:
            assert conn.execute("SHOW max_connections").fetchone()[0] == "20"
            assert not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            assert conn.execute("SELECT count(*) FROM drill.acks WHERE id <= 100").fetchone()[0] == 100
    finally:
        drop_restore(restored.directory)


def test_a_backup_corrupted_in_storage_is_refused_before_any_instance_starts(target, spec, snapshot, no_leftovers):
    s3 = target.s3()
    bad = dataclasses.replace(snapshot, backup_id=snapshot.backup_id + "-bitrot", restore_point=snapshot.restore_point)
    body = bytearray(s3.get_object(Bucket=target.bucket, Key=snapshot.key("base.tar.gz"))["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=target.bucket, Key=bad.key("base.tar.gz"), Body=bytes(body))
    manifest = s3.get_object(Bucket=target.bucket, Key=snapshot.key("backup_manifest"))["Body"].read()
    s3.put_object(Bucket=target.bucket, Key=bad.key("backup_manifest"), Body=manifest)
    s3.put_object(Bucket=target.bucket, Key=bad.key("backup.json"), Body=bad.to_json().encode())
    try:
        with pytest.raises(BackupError, match="does not match the SHA-256"):
            restore(target, spec, snapshot=bad.backup_id)
    finally:
        for name in ("backup.json", "base.tar.gz", "backup_manifest"):
            s3.delete_object(Bucket=target.bucket, Key=bad.key(name))


def test_a_backup_whose_data_changed_after_pg_basebackup_is_refused_by_pg_verifybackup(
    target, spec, snapshot, tmp_path, no_leftovers
):
    """The object checksums match (the damage happened before upload), so only the manifest can tell."""
    s3 = target.s3()
    original = s3.get_object(Bucket=target.bucket, Key=snapshot.key("base.tar.gz"))["Body"].read()
    raw = bytearray(gzip.decompress(original))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw)), mode="r:") as archive:
        member = next(m for m in archive.getmembers() if m.name.strip("./") == "PG_VERSION")
    # Same size, other content: the tar is valid, the file is not what pg_basebackup copied.
    raw[member.offset_data : member.offset_data + 2] = b"81"
    tampered = gzip.compress(bytes(raw), compresslevel=1)
    path = tmp_path / "base.tar.gz"
    path.write_bytes(tampered)
    bad = dataclasses.replace(
        snapshot,
        backup_id=snapshot.backup_id + "-tampered",
        files={**snapshot.files, "base.tar.gz": sha256_file(path)},
    )
    s3.put_object(Bucket=target.bucket, Key=bad.key("base.tar.gz"), Body=tampered)
    manifest = s3.get_object(Bucket=target.bucket, Key=snapshot.key("backup_manifest"))["Body"].read()
    s3.put_object(Bucket=target.bucket, Key=bad.key("backup_manifest"), Body=manifest)
    s3.put_object(Bucket=target.bucket, Key=bad.key("backup.json"), Body=bad.to_json().encode())
    try:
        with pytest.raises(BackupError, match="refused by pg_verifybackup") as refused:
            restore(target, spec, snapshot=bad.backup_id)
        assert "PG_VERSION" in str(refused.value)
    finally:
        for name in ("backup.json", "base.tar.gz", "backup_manifest"):
            s3.delete_object(Bucket=target.bucket, Key=bad.key(name))


def test_the_checklist_finds_archiving_running_encrypted_and_the_schedule_stated(stack, snapshot):
    running = automated_backups(stack)
    assert running.status is CheckStatus.PASS, running.evidence
    assert "encrypted aws:kms" in running.evidence and "base backup(s)" in running.evidence
    schedule = backup_schedule(stack)
    # Continuous archiving holds; RDS's daily backup window has no local scheduler, and the item says so.
    assert schedule.status is CheckStatus.NOT_EMULATED, schedule.evidence
    assert "archive_mode on" in schedule.evidence and "preferred_backup_window" in schedule.evidence


def test_the_checklist_passes_a_manual_snapshot_only_of_the_data_being_signed_off(stack, snapshot):
    result = manual_snapshot(stack)
    if snapshot.dataset_key:
        assert result.status is CheckStatus.PASS, result.evidence
        assert snapshot.backup_id in result.evidence or "manual snapshot" in result.evidence
    else:
        # An unseeded database has no dataset to sign off: a snapshot of it tests nothing the item asks.
        assert result.status is CheckStatus.NOT_CHECKED_YET, result.evidence


def test_the_checklist_fails_retention_while_a_backup_past_seven_days_is_kept(target, stack, snapshot):
    s3 = target.s3()
    assert retention(stack).status is CheckStatus.PASS
    stale = dataclasses.replace(
        snapshot,
        backup_id=f"{snapshot.backup_id}-stale",
        created_at=(datetime.now(UTC) - timedelta(days=9)).isoformat(),
    )
    s3.put_object(Bucket=target.bucket, Key=stale.key("backup.json"), Body=stale.to_json().encode())
    try:
        result = retention(stack)
        assert result.status is CheckStatus.FAIL, result.evidence
        assert "1 backup(s)" in result.evidence and "harness backup prune" in result.evidence
    finally:
        s3.delete_object(Bucket=target.bucket, Key=stale.key("backup.json"))


def test_retention_past_seven_days_keeps_only_the_newest_backup_and_the_wal_it_needs(target, snapshot):
    """Last in this module: it expires the stack's older backups and archive."""
    from harness.backup.catalog import keys_under
    from harness.services.wal_archive import WAL_PREFIX, segment_of

    s3 = target.s3()
    newest = list_backups(s3, target.bucket)[-1]
    plan = apply_retention(s3, target.bucket, datetime.now(UTC) + timedelta(days=8))
    assert [b.backup_id for b in list_backups(s3, target.bucket)] == [newest.backup_id]
    assert newest.backup_id not in plan.expired_backups
    left = [segment_of(k) for k in keys_under(s3, target.bucket, WAL_PREFIX)]
    assert left and all(s[8:24] >= newest.start_wal[8:24] for s in left if not s.endswith(".history"))


def test_waiting_for_the_archive_right_after_a_switch_returns_at_once(stack):
    """Nothing written since the last switch: pg_switch_wal does nothing, and the segment in use holds no
    record, so there is nothing to wait for (the wait used to last until the next write)."""
    with stack.direct.connect(autocommit=True) as conn:
        for _ in range(2):
            (segment,) = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
            began = time.monotonic()
            wait_archived(conn, segment, timeout_s=30)
            assert time.monotonic() - began < 10

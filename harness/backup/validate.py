"""What a restored instance must prove before anyone switches to it (the checklist's "restore validated").

Each check is a (name, passed, detail) line. pg_verifybackup already ran before the instance started
(restore.py); here: pg_amcheck over every table and B-tree index, every table's row count and checksum
against the snapshot's restore point, the audit log's append-only triggers and rows, and the index's
answers to the seed's held-out queries against the source's answers at the snapshot.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from harness.backup.catalog import BackupInfo
from harness.backup.checksums import checksum_mismatches, from_dict, table_checksums
from harness.backup.snapshot import TOP10_QUERIES
from harness.endpoints import PostgresEndpoint
from harness.services.postgres import bin_dir


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Validation:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}

    def lines(self) -> list[str]:
        return [f"{'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]


def amcheck(endpoint: PostgresEndpoint) -> Check:
    command = [
        str(bin_dir() / "pg_amcheck"),
        f"--host={endpoint.host}",
        f"--port={endpoint.port}",
        f"--username={endpoint.user}",
        "--install-missing",
        "--no-password",
        endpoint.dbname,
    ]
    env = {**os.environ, "PGPASSWORD": endpoint.password.reveal(), "PGCONNECT_TIMEOUT": "10"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    output = (result.stdout + result.stderr).strip()
    return Check(
        "pg_amcheck", result.returncode == 0, output[-500:] if output else "heap and B-tree indexes: no corruption"
    )


def validate(endpoint: PostgresEndpoint, info: BackupInfo, *, exact: bool, queries: Any = None) -> Validation:
    """Validate a restored instance. `exact`: it was restored to the snapshot's restore point, so every
    table must match the snapshot's checksums (a point-in-time restore is checked by its caller against
    the writes acknowledged before its target)."""
    result = Validation()
    result.checks.append(amcheck(endpoint))
    with endpoint.connect(autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '10min'")
        found = table_checksums(conn)
        rows = sum(s.rows for s in found.values())
        if exact:
            problems = checksum_mismatches(from_dict(info.checksums), found)
            result.add(
                "table checksums",
                not problems,
                "; ".join(problems) if problems else f"{len(found)} tables, {rows} rows: every checksum matches",
            )
        else:
            # Past the snapshot, rows may come and go, but no table the backup had may be missing.
            missing = sorted(set(info.checksums) - set(found))
            result.add(
                "tables",
                not missing,
                f"missing: {', '.join(missing)}"
                if missing
                else f"{len(found)} tables, {rows} rows; all of the backup's present",
            )
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('app.audit_log') "
            "AND tgname LIKE 'audit_log_append_only%%' AND tgenabled = 'O'"
        ).fetchone()[0]
        audit = found.get("app.audit_log")
        if audit is None and "app.audit_log" not in info.checksums:
            result.add("audit log", True, "the source had no audit log (the unit was not seeded)")
        elif audit is None:
            result.add("audit log", False, "app.audit_log is missing")
        else:
            result.add(
                "audit log",
                triggers == 2,
                f"{audit.rows} entries, append-only triggers enabled: {triggers}/2",
            )
        if info.top10 and queries is not None:
            answers = []
            for vector in list(queries)[:TOP10_QUERIES]:
                literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
                got = conn.execute(
                    "SELECT doc_id FROM app.documents ORDER BY embedding <=> %s::vector LIMIT 10", (literal,)
                ).fetchall()
                answers.append([int(r[0]) for r in got])
            same = sum(a == b for a, b in zip(answers, info.top10, strict=False))
            result.add(
                "ground-truth queries",
                same == len(info.top10) if exact else same > 0,
                f"{same}/{len(info.top10)} held-out queries return the source's top 10",
            )
    return result

"""Restore a `pg_dump -Fc` file (an anonymised staging copy) into the seed's staging schema.

pg_restore decodes the custom format; its SQL output is applied on the seed's own connection, inside the
seed's transaction, so the staging-schema swap, its failure safety and its idempotence hold for a dump too:
a dump that fails half-way leaves the previous data. The price is parallelism: `pg_restore -j` needs
sessions of its own, outside any one transaction, so rows load in one COPY stream per table and only the
index builds run in parallel (max_parallel_maintenance_workers, where the machine has more than one core).

The dump must hold one schema (`pg_dump -n app -Fc`). Its objects are moved into the staging schema by
rewriting the schema qualifier of the dump's own objects only (names from the archive's table of
contents), so references to extension objects (`public.vector(384)`) stay as they are. The harness's own
bookkeeping tables in a dump of a harness-seeded database are left out; extensions are created by the
seed, not the dump.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

from harness.services.postgres import bin_dir

SKIPPED_TABLES = frozenset({"seed_state", "schema_migrations"})
# TOC entry types the seed handles itself: the schema (staging), extensions, privileges and comments on them.
SKIPPED_TYPES = ("SCHEMA", "EXTENSION", "ACL", "DATABASE", "COMMENT", "DEFAULT ACL")
_TOC_LINE = re.compile(r"^\d+; \d+ \d+ (?P<rest>.+)$")
# Types whose names contain a space, matched before splitting the rest of the line.
_MULTIWORD_TYPES = (
    "TABLE DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "FK CONSTRAINT",
    "DEFAULT ACL",
    "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
)
RESTORE_TIMEOUT_S = 3600


class DumpError(ValueError):
    """A dump that cannot be restored here; the message says what to change."""


@dataclass(frozen=True)
class TocEntry:
    line: str
    kind: str
    schema: str
    name: str

    @property
    def object_name(self) -> str:
        # FUNCTION entries carry their signature: f(integer).
        return self.name.split("(", 1)[0]


def pg_restore_binary() -> Path:
    return bin_dir() / "pg_restore"


def _run(args: list[str], what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=RESTORE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DumpError(f"{what} took longer than {RESTORE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise DumpError(f"{what} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def parse_toc(listing: str) -> list[TocEntry]:
    entries = []
    for line in listing.splitlines():
        match = _TOC_LINE.match(line)
        if not match:
            continue
        rest = match.group("rest")
        kind = next((t for t in sorted(_MULTIWORD_TYPES, key=len, reverse=True) if rest.startswith(t + " ")), None)
        if kind is None:
            kind = rest.split(" ", 1)[0]
        parts = rest[len(kind) + 1 :].split(" ")
        schema = parts[0] if parts else "-"
        name = parts[1] if len(parts) > 1 else ""
        entries.append(TocEntry(line, kind, schema, name))
    return entries


def read_toc(dump: Path) -> list[TocEntry]:
    if not dump.is_file():
        raise DumpError(f"{dump} is not a file: give the path of a `pg_dump -Fc` file")
    return parse_toc(_run([str(pg_restore_binary()), "--list", str(dump)], f"reading {dump} (is it pg_dump -Fc?)"))


def dumped_schema(entries: list[TocEntry]) -> str:
    schemas = {e.schema for e in entries if e.kind not in SKIPPED_TYPES and e.schema not in ("-", "pg_catalog")}
    if len(schemas) != 1:
        raise DumpError(
            f"the dump holds objects in {len(schemas)} schemas ({', '.join(sorted(schemas)) or 'none'}); "
            "dump exactly one: pg_dump -n SCHEMA -Fc"
        )
    return schemas.pop()


def selected(entries: list[TocEntry]) -> list[TocEntry]:
    """The entries to restore: the dump's own objects, minus the harness's bookkeeping tables."""
    return [
        e
        for e in entries
        if e.kind not in SKIPPED_TYPES
        and e.name not in SKIPPED_TABLES
        and not any(f" {e.schema} {table} " in e.line for table in SKIPPED_TABLES)
    ]


class SchemaRewriter:
    """Moves qualified references to the dump's own objects from its schema to the staging schema."""

    def __init__(self, schema: str, names: set[str], staging: str) -> None:
        alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        quoted = re.escape(f'"{schema}"')
        self.pattern = re.compile(rf'(?<![\w"])(?:{re.escape(schema)}|{quoted})\.("?)({alternatives})\1(?![\w])')
        self.staging = staging

    def __call__(self, text: str) -> str:
        return self.pattern.sub(lambda m: f"{self.staging}.{m.group(1)}{m.group(2)}{m.group(1)}", text)


def without_session_lines(script: str) -> str:
    """pg_restore's preamble resets search_path and timeouts for the session: the seed's transaction keeps
    its own; `\\restrict` lines are psql meta-commands (pg_dump 18), not SQL."""
    kept = []
    for line in script.splitlines():
        if line.startswith(("SET ", "\\restrict", "\\unrestrict")) or line.startswith(
            "SELECT pg_catalog.set_config('search_path'"
        ):
            continue
        kept.append(line)
    return "\n".join(kept)


@dataclass
class DumpPlan:
    dump: Path
    schema: str
    entries: list[TocEntry]
    rewrite: SchemaRewriter
    digest: str

    @property
    def tables(self) -> list[str]:
        return [e.name for e in self.entries if e.kind == "TABLE"]


def plan_restore(dump: Path, staging: str) -> DumpPlan:
    entries = read_toc(dump)
    schema = dumped_schema(entries)
    chosen = selected(entries)
    names = {e.object_name for e in chosen if e.schema == schema and e.object_name}
    if not any(e.kind == "TABLE" for e in chosen):
        raise DumpError(f"{dump} holds no table outside the harness's bookkeeping: nothing to restore")
    digest = hashlib.sha256()
    with dump.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return DumpPlan(dump, schema, chosen, SchemaRewriter(schema, names, staging), digest.hexdigest()[:16])


def _restore_args(plan: DumpPlan, section: str, list_file: Path) -> list[str]:
    return [
        str(pg_restore_binary()),
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        f"--section={section}",
        "--use-list",
        str(list_file),
        "--file=-",
        str(plan.dump),
    ]


def _apply_script(conn: psycopg.Connection[Any], plan: DumpPlan, section: str, list_file: Path) -> None:
    script = _run(_restore_args(plan, section, list_file), f"pg_restore --section={section}")
    sql_text = plan.rewrite(without_session_lines(script))
    if sql_text.strip():
        conn.execute(sql_text.encode())


def copy_blocks(stream: IO[str]) -> Iterator[tuple[str, list[str]]]:
    """(statement, data lines) for each COPY ... FROM stdin block of pg_restore's data section; other
    statements (setval) come with no data lines."""
    pending: list[str] = []
    for line in stream:
        if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
            rows: list[str] = []
            for data in stream:
                if data.rstrip("\n") == "\\.":
                    break
                rows.append(data)
                if len(rows) >= 10_000:
                    yield line, rows
                    rows = []
                    line = ""
            yield line, rows
        elif line.startswith("SELECT pg_catalog.setval("):
            pending.append(line)
    for statement in pending:
        yield statement, []


def _load_data(conn: psycopg.Connection[Any], plan: DumpPlan, list_file: Path) -> dict[str, int]:
    """Stream pg_restore's data section into the staging tables (COPY text format, as pg_dump wrote it)."""
    counts: dict[str, int] = {}
    process = subprocess.Popen(
        _restore_args(plan, "data", list_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        copy_cm: Any = None
        table = ""
        for statement, rows in copy_blocks(process.stdout):
            if statement.startswith("COPY "):
                if copy_cm is not None:
                    copy_cm.__exit__(None, None, None)
                header = plan.rewrite(statement.strip())
                table = header.split(" ", 2)[1].split(".", 1)[-1]
                copy_cm = conn.cursor().copy(header.removesuffix(";").encode())
                copy = copy_cm.__enter__()
                counts[table] = 0
            elif statement:
                if copy_cm is not None:
                    copy_cm.__exit__(None, None, None)
                    copy_cm = None
                conn.execute(plan.rewrite(statement).encode())
                continue
            for row in rows:
                copy.write(row)
            counts[table] += len(rows)
        if copy_cm is not None:
            copy_cm.__exit__(None, None, None)
    finally:
        process.stdout.close()
        returncode = process.wait(timeout=RESTORE_TIMEOUT_S)
        stderr = process.stderr.read()
        process.stderr.close()
    if returncode != 0:
        raise DumpError(f"pg_restore --section=data failed: {stderr.strip()[-500:]}")
    return counts


def restore_into_staging(conn: psycopg.Connection[Any], plan: DumpPlan, work_dir: Path) -> dict[str, int]:
    """Schema, rows, then indexes and constraints of the dump, into the current transaction's staging schema.
    Returns rows loaded per table."""
    work_dir.mkdir(parents=True, exist_ok=True)
    list_file = work_dir / f"restore-{plan.digest}.list"
    list_file.write_text("\n".join(e.line for e in plan.entries) + "\n")
    try:
        _apply_script(conn, plan, "pre-data", list_file)
        counts = _load_data(conn, plan, list_file)
        workers = max(0, min(4, (os.cpu_count() or 1) - 1))
        conn.execute(f"SET LOCAL max_parallel_maintenance_workers = {workers}")
        _apply_script(conn, plan, "post-data", list_file)
    finally:
        list_file.unlink(missing_ok=True)
    return counts

"""The versioned SQL under fixtures/sql: discovery, checks and rendering.

Files are named NNN_name.sql and start with `-- phase: schema` (run on the empty staging schema, before
loading) or `-- phase: finalize` (run after loading: foreign keys, secondary indexes, grants). They use
unqualified names; `{{dim}}`, `{{schema}}` and `{{app_role}}` are replaced when applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql
from psycopg.abc import AdaptContext

from harness.paths import FIXTURES_DIR

FIXTURES_SQL_DIR = FIXTURES_DIR / "sql"
PHASES = ("schema", "finalize")

_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_PHASE_LINE = re.compile(r"^--\s*phase:\s*(\w+)\s*$")
_TOKEN = re.compile(r"\{\{(\w+)\}\}")


class MigrationError(ValueError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    phase: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, context: AdaptContext, *, dim: int, schema: str, app_role: str) -> str:
        values = {
            "dim": str(int(dim)),
            "schema": sql.Identifier(schema).as_string(context),
            "app_role": sql.Identifier(app_role).as_string(context),
        }

        def substitute(match: re.Match[str]) -> str:
            try:
                return values[match.group(1)]
            except KeyError:
                raise MigrationError(
                    f"{self.version:03d}_{self.name}.sql uses unknown placeholder {match.group(0)}; "
                    f"known: {', '.join('{{' + k + '}}' for k in values)}"
                ) from None

        return _TOKEN.sub(substitute, self.text)


def load_migrations(sql_dir: Path = FIXTURES_SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise MigrationError(
            f"fixture SQL directory {sql_dir} is missing: is the harness installed from its source tree?"
        )
    migrations: list[Migration] = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: fixture SQL files must be named NNN_name.sql (lower case)")
        text = path.read_text()
        first_line = text.split("\n", 1)[0]
        phase = _PHASE_LINE.match(first_line)
        if not phase or phase.group(1) not in PHASES:
            raise MigrationError(f"{path}: the first line must be `-- phase: schema` or `-- phase: finalize`")
        migrations.append(Migration(int(match.group(1)), match.group(2), phase.group(1), text))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{sql_dir}: two fixture SQL files share a version number: {versions}")
    if not migrations:
        raise MigrationError(f"{sql_dir} holds no NNN_name.sql files")
    return migrations


def schema_version(migrations: list[Migration]) -> str:
    """One digest of every file: any change to the fixtures changes every seed fingerprint."""
    digest = hashlib.sha256()
    for m in migrations:
        digest.update(f"{m.version}:{m.name}:{m.phase}:{m.checksum}\n".encode())
    return digest.hexdigest()[:16]

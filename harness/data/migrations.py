"""Versioned SQL: the harness's own under fixtures/sql, or a team's migrations (`harness seed --schema DIR`).

The harness's files are named NNN_name.sql and start with `-- phase: schema` (run on the empty staging schema,
before loading) or `-- phase: finalize` (run after loading: foreign keys, secondary indexes, grants). They use
unqualified names; `{{dim}}`, `{{schema}}` and `{{app_role}}` are replaced when applied.

A team's directory holds plain ordered SQL files, applied as written (no placeholders), in version order:
`001_init.sql`, `0002-users.sql` (leading number), Flyway's `V1__init.sql`, `V1.1__more.sql` (dotted versions
compare part by part), then Flyway's repeatable `R__views.sql` files by name. An Alembic project maps onto it
with `alembic upgrade head --sql > DIR/001_schema.sql` (offline mode writes the SQL). Every file runs before
the data is loaded unless its first line is `-- phase: finalize`, which defers it until after (indexes and
foreign keys build faster over loaded tables).
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
    # False for a team's files: applied exactly as written, `{{` and all.
    templated: bool = True
    file_name: str = ""

    @property
    def label(self) -> str:
        return self.file_name or f"{self.version:03d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, context: AdaptContext, *, dim: int, schema: str, app_role: str) -> str:
        if not self.templated:
            return self.text
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


_TEAM_FILE = re.compile(r"^(?:[Vv])?(\d+(?:[._]\d+)*)(?:__|[-_ ])?(.*)\.sql$")
_REPEATABLE = re.compile(r"^R__(.+)\.sql$")


def _team_version(match: re.Match[str]) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[._]", match.group(1)))


def load_team_migrations(sql_dir: Path) -> list[Migration]:
    """A team's migrations, in the order a migration tool would apply them (see the module docstring)."""
    if not sql_dir.is_dir():
        raise MigrationError(f"--schema {sql_dir}: not a directory; point it at the folder of your migration SQL files")
    versioned: list[tuple[tuple[int, ...], Path]] = []
    repeatable: list[Path] = []
    for path in sorted(sql_dir.iterdir()):
        if path.suffix != ".sql" or not path.is_file():
            continue
        if path.name.startswith(("U", "u")) and "__" in path.name:
            raise MigrationError(f"{path}: looks like a Flyway undo migration; keep undo files out of the directory")
        if _REPEATABLE.match(path.name):
            repeatable.append(path)
            continue
        match = _TEAM_FILE.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: cannot tell its order; name migration files with a leading version "
                "(001_init.sql, V1__init.sql, V1.2__more.sql) or R__name.sql for repeatable ones"
            )
        versioned.append((_team_version(match), path))
    versions = [v for v, _ in versioned]
    duplicates = sorted({".".join(map(str, v)) for v in versions if versions.count(v) > 1})
    if duplicates:
        raise MigrationError(f"{sql_dir}: two migration files share version {', '.join(duplicates)}")
    ordered = [p for _, p in sorted(versioned)] + repeatable
    if not ordered:
        raise MigrationError(f"{sql_dir} holds no .sql migration files")
    migrations = []
    for ordinal, path in enumerate(ordered, start=1):
        text = path.read_text()
        phase = _PHASE_LINE.match(text.split("\n", 1)[0])
        migrations.append(
            Migration(
                ordinal,
                path.stem,
                phase.group(1) if phase and phase.group(1) in PHASES else "schema",
                text,
                templated=False,
                file_name=path.name,
            )
        )
    return migrations

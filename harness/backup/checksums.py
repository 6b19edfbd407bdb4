"""Per-table row counts and content checksums: how a restore proves it holds what the source held.

The checksum of a table is the md5 of its rows' md5s in sorted order, so it depends on the rows' content
only (not on their physical order, which a restore need not keep) and any changed, missing or extra row
changes it. Every ordinary table of every non-system schema is covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: str

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


def table_checksums(conn: Any) -> dict[str, TableSum]:
    """{schema.table: (rows, checksum)} for every user table, read in one snapshot."""
    out: dict[str, TableSum] = {}
    for schema, table in conn.execute(_TABLES).fetchall():
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
            "FROM (SELECT md5(t::text) AS h FROM {} t) s"
        ).format(sql.Identifier(schema, table))
        rows, checksum = conn.execute(query).fetchone()
        out[f"{schema}.{table}"] = TableSum(int(rows), str(checksum))
    return out


def checksum_mismatches(expected: dict[str, TableSum], found: dict[str, TableSum]) -> list[str]:
    """What differs, one line per table (empty when everything matches)."""
    problems = []
    for name in sorted(set(expected) | set(found)):
        want, got = expected.get(name), found.get(name)
        if want is None:
            problems.append(f"{name}: present in the restore, not in the source")
        elif got is None:
            problems.append(f"{name}: missing from the restore")
        elif want != got:
            problems.append(
                f"{name}: {got.rows} rows, checksum {got.checksum[:12]} where the source had "
                f"{want.rows} rows, checksum {want.checksum[:12]}"
            )
    return problems


def from_dict(raw: dict[str, Any]) -> dict[str, TableSum]:
    return {name: TableSum(int(v["rows"]), str(v["checksum"])) for name, v in raw.items()}

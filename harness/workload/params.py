"""`harness workload params`: a parameter generator for every $n of every statement, from the seeded data.

Each placeholder's role is read from the parse tree (pglast): compared with a column (`col = $1`,
`col IN ($1)`, `col BETWEEN $1 AND $2`), assigned to one (`INSERT (col) VALUES ($1)`, `SET col = $1`), a
vector distance (`col <=> $1`: a held-out query of that column's ground truth) or a LIMIT/OFFSET. Column
placeholders get a sample of that column's values from the local seed, written into the workload file for
the team to edit. A placeholder whose role cannot be read gets `{todo: ...}`, and replay refuses the
statement until a generator is written there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pglast
import psycopg
from pglast import ast
from psycopg import sql

from harness.endpoints import PostgresEndpoint
from harness.workload.file import Workload, placeholders
from harness.workload.sqltree import relation_name, walk

VECTOR_OPERATORS = frozenset({"<=>", "<->", "<#>", "<+>", "<~>", "<%>"})
SAMPLE_SIZE = 50
DEFAULT_LIMIT = 10


@dataclass(frozen=True)
class Role:
    """What one placeholder stands for."""

    kind: str  # column, vector, limit, offset
    table: str | None = None
    column: str | None = None


def _param_number(node: Any) -> int | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return int(node.number) if isinstance(node, ast.ParamRef) and node.number is not None else None


def _column(node: Any) -> tuple[str | None, str] | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.ColumnRef):
        return None
    names = [str(f.sval) for f in node.fields or () if isinstance(f, ast.String)]
    if not names:
        return None
    return (names[-2] if len(names) > 1 else None, names[-1])


def infer_roles(query: str) -> dict[int, Role]:
    """$n -> its role, for the placeholders whose role the parse tree shows."""
    try:
        parsed = pglast.parse_sql(query)
    except pglast.parser.ParseError:
        return {}
    roles: dict[int, Role] = {}
    for raw in parsed:
        nodes = list(walk(raw.stmt))
        aliases: dict[str, str] = {}
        tables: list[str] = []
        for node in nodes:
            name = relation_name(node)
            if name is not None and isinstance(node, ast.RangeVar):
                tables.append(name)
                aliases[str(node.alias.aliasname) if node.alias else name] = name
                aliases.setdefault(name, name)
        only_table = tables[0] if len(set(tables)) == 1 else None

        def table_of(
            qualifier: str | None, aliases: dict[str, str] = aliases, only_table: str | None = only_table
        ) -> str | None:
            return aliases.get(qualifier) if qualifier is not None else only_table

        def assign(number: int | None, role: Role) -> None:
            if number is not None and number not in roles:
                roles[number] = role

        for node in nodes:
            if isinstance(node, ast.A_Expr):
                op = str(node.name[-1].sval) if node.name else ""
                sides = [(node.lexpr, node.rexpr), (node.rexpr, node.lexpr)]
                for col_side, other in sides:
                    found = _column(col_side)
                    if found is None:
                        continue
                    qualifier, column = found
                    kind = "vector" if op in VECTOR_OPERATORS else "column"
                    values = other if isinstance(other, list | tuple) else [other]
                    for value in values:
                        assign(_param_number(value), Role(kind, table_of(qualifier), column))
            elif isinstance(node, ast.SelectStmt):
                assign(_param_number(node.limitCount), Role("limit"))
                assign(_param_number(node.limitOffset), Role("offset"))
            elif isinstance(node, ast.InsertStmt) and node.cols:
                columns = [str(c.name) for c in node.cols]
                select = node.selectStmt
                for row in (select.valuesLists or ()) if isinstance(select, ast.SelectStmt) else ():
                    for column, value in zip(columns, row, strict=False):
                        assign(_param_number(value), Role("column", relation_name(node.relation), column))
            elif isinstance(node, ast.UpdateStmt):
                for target in node.targetList or ():
                    if isinstance(target, ast.ResTarget) and target.name:
                        assign(_param_number(target.val), Role("column", relation_name(node.relation), target.name))
    return roles


def _plain(value: Any) -> Any:
    """A YAML-friendly form of a database value (what psycopg sends back as text works for any type)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _sample(conn: psycopg.Connection[Any], table: str, column: str) -> list[Any]:
    # md5 ordering: a spread of values that is the same every time for the same data.
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT {c}, md5({c}::text) FROM {t} WHERE {c} IS NOT NULL ORDER BY 2 LIMIT {n}").format(
            c=sql.Identifier(column), t=sql.Identifier(table), n=sql.Literal(SAMPLE_SIZE)
        )
    ).fetchall()
    return [_plain(r[0]) for r in rows]


def fill_params(workload: Workload, endpoint: PostgresEndpoint, *, overwrite: bool = False) -> list[str]:
    """Write generators into every statement that lacks them; returns notes on placeholders left to the team."""
    notes: list[str] = []
    with endpoint.connect(autocommit=True) as conn:
        conn.read_only = True
        conn.execute("SET statement_timeout = '30s'")
        for statement in workload.statements:
            needed = placeholders(statement.query)
            if needed == 0 or (statement.params and not overwrite and len(statement.params) >= needed):
                continue
            roles = infer_roles(statement.query)
            params: list[dict[str, Any]] = []
            for n in range(1, needed + 1):
                role = roles.get(n)
                generator: dict[str, Any]
                if role is None or (role.kind in ("column", "vector") and role.table is None):
                    generator = {"todo": f"${n}: its role is not clear from the query; write a generator here"}
                elif role.kind == "limit":
                    generator = {"value": DEFAULT_LIMIT}
                elif role.kind == "offset":
                    generator = {"value": 0}
                elif role.kind == "vector":
                    generator = {"vector": f"{role.table}.{role.column}"}
                else:
                    assert role.table is not None and role.column is not None
                    try:
                        values = _sample(conn, role.table, role.column)
                    except psycopg.Error as exc:
                        values = []
                        notes.append(f"{statement.id} ${n}: could not sample {role.table}.{role.column}: {exc}")
                    generator = (
                        {"sample": values}
                        if values
                        else {"todo": f"${n}: {role.table}.{role.column} has no values to sample"}
                    )
                if "todo" in generator:
                    notes.append(f"{statement.id}: {generator['todo']}")
                params.append(generator)
            statement.params = params
    return notes

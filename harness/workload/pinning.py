"""Which statements of a workload would pin a client to one database connection in RDS Proxy, and what
PgBouncer in transaction mode (the local stand-in) does with each.

Statements are parsed with pglast (PostgreSQL's own parser), never matched by regular expression, so
`SELECT 'SET x'` is not a SET and `pg_advisory_lock` inside a subquery is still found. The rules follow
AWS's list for RDS Proxy with PostgreSQL ("Avoiding pinning an RDS Proxy"): SET and RESET (SET LOCAL and
set_config(..., true) excepted), set_config(..., false), PREPARE / EXECUTE / DEALLOCATE, DISCARD, temporary
tables, sequences and views, DECLARE CURSOR, LISTEN, LOAD, sequence functions (nextval, setval, currval,
lastval) and session-level advisory locks (the *_xact_* variants do not pin). Each statement is taken as
sent on its own (autocommit), which is how pg_stat_statements reports them; prepared statements of the
extended protocol (a driver's automatic preparation) are not in the SQL text and are not judged here.

PgBouncer's outcome per statement, in transaction pooling, where the next transaction of the same client
may run on another server connection:
  fine  - nothing session-scoped survives the transaction, or PgBouncer itself tracks it;
  leak  - state stays on the server connection and reaches whichever client uses it next;
  error - the client's next statement that relies on the state fails or misbehaves (the prepared statement,
          temporary table, cursor or notification is on another connection).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast, enums

from harness.workload.sqltree import walk

FINE, LEAK, ERROR = "fine", "leak", "error"
_SEVERITY = {FINE: 0, LEAK: 1, ERROR: 2}
# Parameters PgBouncer tracks per client: it restores a client's own value on whichever server connection the
# client gets next, but only for a client that sent one when connecting; any other client inherits the SET
# (measured here: tests/integration/test_pgbouncer_pinning.py).
TRACKED_PARAMETERS = frozenset(
    {"application_name", "client_encoding", "datestyle", "timezone", "standard_conforming_strings"}
)
SESSION_LOCKS = frozenset(
    {"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared"}
)
UNLOCKS = frozenset({"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all"})
SEQUENCE_FUNCTIONS = frozenset({"nextval", "setval", "currval", "lastval"})
# currval/lastval read what this session's nextval did: on another server connection that is someone else's.
SESSION_SEQUENCE_READS = frozenset({"currval", "lastval"})
_CURSOR_OPT_HOLD = 0x0020


@dataclass(frozen=True)
class PinningFinding:
    """One reason a statement pins, or misbehaves behind PgBouncer."""

    code: str
    pins: bool
    pgbouncer: str
    why: str


@dataclass(frozen=True)
class StatementVerdict:
    sql: str
    findings: tuple[PinningFinding, ...]
    parse_error: str | None = None

    @property
    def pins(self) -> bool:
        return any(f.pins for f in self.findings)

    @property
    def pgbouncer(self) -> str:
        """The worst outcome over the statement's findings (fine when it has none)."""
        return max((f.pgbouncer for f in self.findings), key=_SEVERITY.__getitem__, default=FINE)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)


def _func_name(node: ast.FuncCall) -> str:
    return str(node.funcname[-1].sval).lower() if node.funcname else ""


def _const_bool(node: Any) -> bool | None:
    """The value of a literal boolean argument (true/false, 't'/'f'), None when it is a parameter or expression."""
    if isinstance(node, ast.A_Const) and not node.isnull:
        value = node.val
        if isinstance(value, ast.Boolean):
            return bool(value.boolval)
        if isinstance(value, ast.String):
            return str(value.sval).lower() in ("t", "true", "on", "1", "yes")
    if isinstance(node, ast.TypeCast):
        return _const_bool(node.arg)
    return None


def _temporary(relation: Any) -> bool:
    return isinstance(relation, ast.RangeVar) and relation.relpersistence == "t"


def _statement_findings(stmt: Any) -> list[PinningFinding]:
    found: list[PinningFinding] = []
    if isinstance(stmt, ast.VariableSetStmt):
        name = (stmt.name or "").lower()
        if stmt.is_local:
            found.append(PinningFinding("set_local", False, FINE, "SET LOCAL lasts until the transaction ends"))
        elif stmt.kind in (enums.VariableSetKind.VAR_RESET, enums.VariableSetKind.VAR_RESET_ALL):
            found.append(
                PinningFinding(
                    "reset", True, LEAK, "RESET changes a session parameter (to its default) on the connection"
                )
            )
        elif name in TRACKED_PARAMETERS:
            found.append(
                PinningFinding("set", True, LEAK, f"SET {name}: restored only for clients that set it when connecting")
            )
        else:
            found.append(
                PinningFinding(
                    "set", True, LEAK, f"SET {name or 'session'} stays on the server connection after the client"
                )
            )
    elif isinstance(stmt, ast.PrepareStmt):
        found.append(
            PinningFinding("prepare", True, ERROR, "PREPARE: the next EXECUTE may reach a connection without it")
        )
    elif isinstance(stmt, ast.ExecuteStmt):
        found.append(PinningFinding("execute", True, ERROR, "EXECUTE needs the PREPARE of the same server connection"))
    elif isinstance(stmt, ast.DeallocateStmt):
        found.append(
            PinningFinding("deallocate", True, ERROR, "DEALLOCATE needs the PREPARE of the same server connection")
        )
    elif isinstance(stmt, ast.DiscardStmt):
        found.append(PinningFinding("discard", True, FINE, "DISCARD resets the connection's session state"))
    elif isinstance(stmt, ast.ListenStmt):
        found.append(
            PinningFinding("listen", True, ERROR, "LISTEN: notifications go to whichever client holds the connection")
        )
    elif isinstance(stmt, ast.LoadStmt):
        found.append(PinningFinding("load", True, LEAK, "LOAD loads a library into the server connection for good"))
    elif isinstance(stmt, ast.DeclareCursorStmt):
        if (stmt.options or 0) & _CURSOR_OPT_HOLD:
            found.append(PinningFinding("cursor_with_hold", True, ERROR, "a WITH HOLD cursor outlives the transaction"))
        else:
            found.append(PinningFinding("cursor", True, FINE, "DECLARE CURSOR (RDS Proxy pins on any cursor)"))
    elif isinstance(stmt, ast.CreateStmt) and _temporary(stmt.relation):
        found.append(PinningFinding("temp_table", True, ERROR, "a temporary table lives on one server connection"))
    elif isinstance(stmt, ast.CreateSeqStmt) and _temporary(stmt.sequence):
        found.append(PinningFinding("temp_table", True, ERROR, "a temporary sequence lives on one server connection"))
    elif isinstance(stmt, ast.ViewStmt) and _temporary(stmt.view):
        found.append(PinningFinding("temp_table", True, ERROR, "a temporary view lives on one server connection"))
    elif isinstance(stmt, ast.CreateTableAsStmt) and stmt.into is not None and _temporary(stmt.into.rel):
        found.append(PinningFinding("temp_table", True, ERROR, "a temporary table lives on one server connection"))
    elif isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None and _temporary(stmt.intoClause.rel):
        found.append(
            PinningFinding("temp_table", True, ERROR, "SELECT INTO TEMP creates a table on one server connection")
        )
    return found


def _function_findings(stmt: Any) -> list[PinningFinding]:
    found: list[PinningFinding] = []
    for node in walk(stmt):
        if not isinstance(node, ast.FuncCall):
            continue
        name = _func_name(node)
        if name in SESSION_LOCKS:
            found.append(
                PinningFinding("advisory_lock", True, LEAK, f"{name} holds a session lock on the server connection")
            )
        elif name in UNLOCKS:
            found.append(
                PinningFinding(
                    "advisory_unlock", True, ERROR, f"{name} may run on a connection that does not hold the lock"
                )
            )
        elif name in SEQUENCE_FUNCTIONS:
            outcome = ERROR if name in SESSION_SEQUENCE_READS else FINE
            found.append(
                PinningFinding("sequence_function", True, outcome, f"{name}() (RDS Proxy pins on sequence functions)")
            )
        elif name == "set_config":
            is_local = _const_bool(node.args[2]) if node.args and len(node.args) == 3 else None
            if is_local is not True:
                found.append(
                    PinningFinding("set_config", True, LEAK, "set_config(..., false) sets a session parameter for good")
                )
    return found


def analyse(sql_text: str) -> StatementVerdict:
    """The findings of every statement in `sql_text` (several are judged together, as one request)."""
    try:
        parsed = pglast.parse_sql(sql_text)
    except pglast.parser.ParseError as exc:
        return StatementVerdict(sql_text, (), parse_error=str(exc))
    findings: list[PinningFinding] = []
    for raw in parsed:
        findings.extend(_statement_findings(raw.stmt))
        findings.extend(_function_findings(raw.stmt))
    return StatementVerdict(sql_text, tuple(findings))


@dataclass
class PinningSummary:
    """Per-statement verdicts weighted by how often each is called."""

    verdicts: list[tuple[str, StatementVerdict, int]] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(calls for _, _, calls in self.verdicts)

    @property
    def pinned_calls(self) -> int:
        return sum(calls for _, v, calls in self.verdicts if v.pins)

    @property
    def unparsed(self) -> list[str]:
        return [sid for sid, v, _ in self.verdicts if v.parse_error]

    @property
    def pinned_share_pct(self) -> float:
        total = self.total_calls
        if total == 0:
            raise ValueError("the workload has no calls, so there is no pinned share")
        return 100.0 * self.pinned_calls / total

    def lines(self) -> list[str]:
        out = [f"{'statement':<24} {'calls':>9}  {'pins':<5} {'pgbouncer':<9} why"]
        for sid, verdict, calls in self.verdicts:
            if verdict.parse_error:
                out.append(f"{sid:<24} {calls:>9}  {'?':<5} {'?':<9} could not parse: {verdict.parse_error}")
                continue
            why = "; ".join(f.why for f in verdict.findings) or "-"
            out.append(f"{sid:<24} {calls:>9}  {'yes' if verdict.pins else 'no':<5} {verdict.pgbouncer:<9} {why}")
        if self.total_calls:
            out.append(
                f"pinned share: {self.pinned_share_pct:.1f}% of {self.total_calls:,} calls "
                f"({sum(1 for _, v, _ in self.verdicts if v.pins)} of {len(self.verdicts)} statements)"
            )
        return out


def summarise(statements: Iterable[tuple[str, str, int]]) -> PinningSummary:
    """(id, sql, calls) for each statement of a workload."""
    return PinningSummary([(sid, analyse(text), calls) for sid, text, calls in statements])

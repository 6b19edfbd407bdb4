"""The package layout the documentation's Layout page (docs/concepts/layout.md) describes holds: dependencies
point one way, nothing reaches into another package's private names, and the library never imports the
scenarios or locustfiles.

The Layout page's table is rendered from ALLOWED, WHAT and WHY here, so the two cannot drift: after changing
them, `.venv/bin/python tests/unit/test_layout.py --write` rewrites the table between the page's layout markers,
and a test fails while the page differs.
"""

import ast
import sys
from collections import defaultdict

from harness.paths import REPO_ROOT

HARNESS = REPO_ROOT / "harness"
LAYOUT_PAGE = REPO_ROOT / "docs" / "concepts" / "layout.md"
TABLE_START = "<!-- layout:start -->"
TABLE_END = "<!-- layout:end -->"
REGENERATE = ".venv/bin/python tests/unit/test_layout.py --write"
FOUNDATION = {"config", "endpoints", "sizing", "paths", "inputfiles", "progress"}
# What each package may import besides the foundation modules (docs/concepts/layout.md).
ALLOWED: dict[str, set[str]] = {
    "config": {"sizing", "spec"},
    "endpoints": {"config"},
    "sizing": set(),
    "paths": set(),
    "inputfiles": set(),
    "progress": set(),
    "services": set(),
    "lambda_runtime": {"services"},
    "backends": {"lambda_runtime", "services"},
    "security": {"data", "measure", "services"},
    "model": set(),
    "measure": {"model", "services"},
    "data": {"services"},
    "thresholds": {"measure"},
    "spec": set(),
    "checklist": {"thresholds", "spec", "backup", "services"},
    "report": {"thresholds", "measure", "monitoring", "checklist"},
    "monitoring": {"thresholds", "measure", "services"},
    "app": {"data", "lambda_runtime", "measure", "services"},
    "backup": {"data", "services"},
    "drills": {"app", "backends", "backup", "measure", "services"},
    "locustusers": {"app", "backends", "data", "measure", "monitoring", "thresholds", "report", "services", "workload"},
    "workload": {"data", "measure", "thresholds"},
    "pytest_plugin": {"backends"},
    "capacity": {"app", "backends", "data", "measure", "model", "thresholds"},
    "signoff": {
        "backends",
        "backup",
        "checklist",
        "data",
        "measure",
        "report",
        "security",
        "services",
        "spec",
        "thresholds",
    },
    "scaffold": set(),
    "cli": {
        "app",
        "backends",
        "backup",
        "capacity",
        "data",
        "drills",
        "measure",
        "model",
        "thresholds",
        "report",
        "services",
        "lambda_runtime",
        "workload",
        "monitoring",
        "security",
        "spec",
        "checklist",
        "signoff",
        "scaffold",
    },
}
# What lives in each package or top-level module: the Layout page's table, one line each.
WHAT: dict[str, str] = {
    "config": "typed settings resolved once (with the unit's values from fixtures/unit.yaml)",
    "endpoints": "one endpoint object per service",
    "sizing": "RDS/ElastiCache/Lambda sizing formulas",
    "paths": "where the shipped files are (inside the installed package, or the checkout's top-level directories)",
    "inputfiles": "reading a user's files with one set of refusals",
    "progress": "the terminal progress printer for long steps",
    "services": (
        "one module per local process (postgres, pgbouncer + its admin console, redis, aws emulator, lambda "
        "server) on one `LocalService` base; cgroups, the OS account; the fault-injecting TCP proxy (a thread, "
        "not a process); the private CA and certificates TLS uses"
    ),
    "lambda_runtime": (
        "the local Lambda service: HTTP server, function registry, invocation runtime, execution environments "
        "(worker processes, or containers for the compose backend), worker, REPORT line, metric publisher"
    ),
    "model": (
        "what AWS would book, modelled: CPU- and I/O-credit ledgers, a modelled day of credits, monthly free-tier "
        "and cost projections"
    ),
    "measure": "the load core, key popularity, samplers, the metric registry, the results file, run facts",
    "data": (
        "seeding (profiles, tables, migrations, the loading steps every seed path shares), growth by appending "
        "(`grow`), a team's schema, data spec and dump (`spec`, `team_seed`, `dump_restore`), vectors, ground "
        "truth, the application role"
    ),
    "security": (
        "the security checklist's checks (`harness verify security`), the IAM policy lint, secret rotation, the "
        "secret grep"
    ),
    "backends": (
        "embedded, compose (+ the generated compose spec, its Lambda runtime of containers), external; read-only "
        "probes; the guard for destructive work"
    ),
    "thresholds": "the grammar, the threshold model, loading, overrides, evaluation",
    "monitoring": (
        "what CloudWatch shows: alarms from the thresholds, CloudWatch's alarm semantics, AWS metrics published "
        'from the samplers, dashboards, Terraform/CloudFormation export, drills, "would the production alarm '
        'have fired"'
    ),
    "spec": (
        "the unit's spec (fixtures/unit.yaml): loading, the design document's sections, the lint of its contradictions"
    ),
    "checklist": (
        "the design document's pre-/post-deployment checklist items, the registry of checks that decide them, "
        "the live probes the sign-off records"
    ),
    "report": (
        "text, HTML (charts), JUnit and comparison of runs; the checklist leads the report; the production-alarms, "
        "dashboards and security sections"
    ),
    "app": (
        "what the application does: cache-aside (degrading to PostgreSQL when the cache is down) and its warmer, "
        "the GDPR functions (deploy, invoke), user clones"
    ),
    "backup": (
        "WAL archive layout, base backups with restore points and checksums, cross-region copies, retention, "
        "restores to new instances and their validation"
    ),
    "drills": "failure drills (services, database, cache, proxy, network, lambda), the acknowledged-writes workload",
    "workload": (
        "a team's query mix: the workload file, capture from pg_stat_statements, parameter generators, open-model "
        "replay, RDS Proxy pinning (pglast), the vector-search target"
    ),
    "locustusers": (
        "Locust users, workloads, shapes, the plugin and its verdict gate, CloudWatch publishing during a run"
    ),
    "capacity": (
        "capacity planning: the size sweep, the saturation ramp, the knee and headroom, the class table and "
        "recommendation"
    ),
    "signoff": (
        "the sign-off (`make signoff`): the scenario runner, the drained pass, the pytest plugin showing the "
        "scenarios' progress and running verdict"
    ),
    "scaffold": (
        "`harness init`: a team's repository (settings, thresholds, unit spec, migrations, data spec, workload, "
        "locustfile, CI for GitHub Actions and GitLab) from the templates it ships"
    ),
    "cli": (
        "the `harness` command: arguments and the call for main (up/down/status/env), seed, deploy, workload, "
        "alarms, verify, spec, capacity, backup, drill, reports, signoff, init, locustfile; the plumbing every "
        "command shares (`common`)"
    ),
    "pytest_plugin": "the `stack` fixture",
}
# Why an allowed import is there, where the package's name alone does not say: beside it in the table.
WHY: dict[tuple[str, str], str] = {
    ("config", "spec"): "the unit's values",
    ("data", "services"): "the pg_restore binary",
}


def layout_order() -> list[str]:
    """The foundation modules, then each package after everything it may import (ties in ALLOWED's order)."""
    order = [name for name in ALLOWED if name in FOUNDATION]
    rest = [name for name in ALLOWED if name not in FOUNDATION]
    while rest:
        ready = next((n for n in rest if not (ALLOWED[n] - FOUNDATION - set(order))), None)
        assert ready is not None, f"ALLOWED has a cycle among {rest}"
        order.append(ready)
        rest.remove(ready)
    return order


def layout_table() -> str:
    """The Layout page's table as ALLOWED, WHAT and WHY say, between its markers."""
    rows = ["| package | what lives there | may import (besides the foundation) |", "| --- | --- | --- |"]
    for name in layout_order():
        shown = f"`{name}/`" if (HARNESS / name).is_dir() else f"`{name}.py`"
        imports = [f"{t} ({WHY[name, t]})" if (name, t) in WHY else t for t in sorted(ALLOWED[name])]
        rows.append(f"| {shown} | {WHAT[name]} | {', '.join(imports) or 'nothing else'} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def page_table(text: str) -> str:
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    assert 0 <= start < end, f"{LAYOUT_PAGE} lacks the {TABLE_START} ... {TABLE_END} markers around its table"
    return text[start : end + len(TABLE_END)]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "harness"


def harness_imports() -> list[tuple[str, str, list[str]]]:
    """(importing module, imported module, names) for every `from harness... import` in the package."""
    found = []
    for path in sorted(HARNESS.rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness."):
                found.append((module, node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                found.extend((module, a.name, []) for a in node.names if a.name.startswith("harness."))
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported, _ in harness_imports():
        source, target = package_of(module), package_of(imported)
        if source != target:
            graph[source].add(target)
    return graph


def test_every_package_and_top_level_module_is_in_the_layout_table():
    on_disk = {p.stem for p in HARNESS.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in HARNESS.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert on_disk == set(ALLOWED), f"add the new package to ALLOWED and WHAT here, then run {REGENERATE}"


def test_every_package_says_what_lives_there_and_every_reason_names_an_allowed_import():
    assert set(WHAT) == set(ALLOWED), f"one line per package in WHAT: {set(ALLOWED) ^ set(WHAT)}"
    assert all(target in ALLOWED[source] for source, target in WHY), "WHY names an import ALLOWED does not have"


def test_readmes_layout_table_is_the_one_rendered_from_allowed():
    stale = f"the Layout page's table is stale: run {REGENERATE}"
    assert page_table(LAYOUT_PAGE.read_text()) == layout_table(), stale


def test_packages_import_only_what_the_layout_allows():
    wrong = {
        source: sorted(targets - ALLOWED[source] - FOUNDATION)
        for source, targets in package_graph().items()
        if targets - ALLOWED[source] - FOUNDATION
    }
    assert not wrong, f"imports against the layout (docs/concepts/layout.md): {wrong}"


def test_the_package_graph_has_no_cycle():
    graph = package_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_module_imports_another_module_private_names():
    private = [
        f"{module} imports {name} from {imported}"
        for module, imported, names in harness_imports()
        for name in names
        if name.startswith("_")
    ]
    assert not private


def test_the_library_never_imports_scenarios_or_locustfiles():
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not any(n.split(".")[0] in {"scenarios", "locustfiles", "tests"} for n in names), path


def write_page_table() -> None:
    text = LAYOUT_PAGE.read_text()
    LAYOUT_PAGE.write_text(text.replace(page_table(text), layout_table()))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {REGENERATE}  (rewrites the Layout page's table from ALLOWED, WHAT and WHY)")
    write_page_table()

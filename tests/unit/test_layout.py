"""The package layout README's "Layout" section describes holds: dependencies point one way, nothing reaches
into another package's private names, and the library never imports the scenarios or locustfiles."""

import ast
from collections import defaultdict

from harness.paths import REPO_ROOT

HARNESS = REPO_ROOT / "harness"
FOUNDATION = {"config", "endpoints", "sizing", "paths", "inputfiles"}
# What each package may import besides the foundation modules (README, "Layout").
ALLOWED: dict[str, set[str]] = {
    "config": {"sizing", "spec"},
    "endpoints": {"config"},
    "sizing": set(),
    "paths": set(),
    "inputfiles": set(),
    "services": set(),
    "lambda_runtime": {"services"},
    "backends": {"services", "security"},
    "security": {"data", "measure", "services"},
    "measure": {"services"},
    "data": {"measure", "services"},
    "thresholds": {"measure"},
    "spec": set(),
    "checklist": {"thresholds", "spec", "backup", "services"},
    "report": {"thresholds", "measure", "monitoring", "checklist"},
    "monitoring": {"thresholds", "measure", "services"},
    "app": {"data", "lambda_runtime", "measure", "services"},
    "backup": {"data", "measure", "services"},
    "drills": {"app", "backends", "backup", "measure", "services"},
    "locustusers": {"app", "backends", "data", "measure", "monitoring", "thresholds", "report", "services", "workload"},
    "workload": {"data", "measure", "thresholds"},
    "pytest_plugin": {"backends"},
    "capacity": {"app", "backends", "data", "measure", "thresholds"},
    "scaffold": set(),
    "cli": {
        "app",
        "backends",
        "backup",
        "capacity",
        "data",
        "drills",
        "measure",
        "thresholds",
        "report",
        "services",
        "lambda_runtime",
        "workload",
        "monitoring",
        "security",
        "spec",
        "checklist",
        "scaffold",
    },
}


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
    assert on_disk == set(ALLOWED), "add the new package to ALLOWED here and to README's Layout section"


def test_packages_import_only_what_the_layout_allows():
    wrong = {
        source: sorted(targets - ALLOWED[source] - FOUNDATION)
        for source, targets in package_graph().items()
        if targets - ALLOWED[source] - FOUNDATION
    }
    assert not wrong, f"imports against the layout (README, Layout): {wrong}"


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

"""The files `harness init` writes, and writing them all or none."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.paths import DISTRIBUTION, FIXTURES_DIR, harness_version

GITIGNORE_FILE = ".gitignore"
_TEMPLATES = resources.files("harness.scaffold") / "templates"
# Where each template goes in the team's repository (the templates' own names carry no leading dot, so the
# package's tree holds no hidden files).
_FROM_TEMPLATES = {
    "harness.toml": "harness.toml",
    "data.yaml": "data.yaml",
    "workload.yaml": "workload.yaml",
    "migrations/V1__init.sql": "migrations/V1__init.sql",
    "migrations/V2__indexes.sql": "migrations/V2__indexes.sql",
    "locustfile.py": "locustfile.py.in",
    ".github/workflows/dbunit-signoff.yml": "github-workflow.yml",
    ".gitlab-ci.yml": "gitlab-ci.yml",
}
# The shipped unit spec cites its design document by a relative path, so the document comes along.
_FROM_FIXTURES = {
    "thresholds.yaml": "thresholds.yaml",
    "unit.yaml": "unit.yaml",
    "design/database-unit-deployment-architecture.md": "design/database-unit-deployment-architecture.md",
}
_REQUIREMENT_MARK = "@HARNESS_REQUIREMENT@"


class InitError(ValueError):
    """The directory cannot be set up as asked; nothing was written."""


@dataclass(frozen=True)
class Written:
    path: Path
    action: str


def default_requirement() -> str:
    """The CI templates install the version that wrote them: the harness pins what it measures."""
    version = harness_version()
    return f"{DISTRIBUTION}=={version}" if version[:1].isdigit() else DISTRIBUTION


def check_requirement(requirement: str) -> str:
    """What pip installs in CI, on one line: a requirement, a wheel's URL or path, or a VCS URL."""
    requirement = requirement.strip()
    if not requirement or any(c in requirement for c in "\n\r\"'`$"):
        raise InitError(
            f"--requirement {requirement!r} cannot be written into the CI files: give what `pip install` takes, "
            "e.g. dbunit-harness==0.1.0, a wheel's URL or git+https://host/org/dbunit-harness@v0.1.0"
        )
    return requirement


def planned_files(requirement: str | None = None) -> dict[str, str]:
    """Each file's path in the repository and its text; the CI files install `requirement`."""
    pinned = default_requirement() if requirement is None else check_requirement(requirement)
    files = {dest: (_TEMPLATES / name).read_text(encoding="utf-8") for dest, name in _FROM_TEMPLATES.items()}
    files.update({dest: (FIXTURES_DIR / name).read_text(encoding="utf-8") for dest, name in _FROM_FIXTURES.items()})
    return {dest: text.replace(_REQUIREMENT_MARK, pinned) for dest, text in files.items()}


def _gitignore_lines() -> list[str]:
    return (_TEMPLATES / "gitignore").read_text(encoding="utf-8").splitlines()


def scaffold(target: Path, force: bool = False, requirement: str | None = None) -> list[Written]:
    """Write the files into target (created if missing). An existing file is an error unless force; then it
    is replaced. .gitignore is the one file added to rather than replaced: its missing entries are appended.
    The CI files pip-install `requirement` (default: this version from the package index)."""
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} is not a directory")
    files = planned_files(requirement)
    existing = [dest for dest in files if (target / dest).exists()]
    blocked = [dest for dest in existing if not (target / dest).is_file()]
    if blocked:
        raise InitError(f"{', '.join(blocked)} in {target} exist and are not files; nothing was written")
    if existing and not force:
        raise InitError(f"{', '.join(existing)} already exist in {target}; nothing was written (--force replaces them)")
    written = []
    for dest, text in files.items():
        path = target / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(Written(path, "replaced" if dest in existing else "wrote"))
    gitignore = target / GITIGNORE_FILE
    present = set(gitignore.read_text(encoding="utf-8").splitlines()) if gitignore.is_file() else set()
    missing = [line for line in _gitignore_lines() if line not in present]
    if missing:
        before = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
        separator = "\n" if before and not before.endswith("\n") else ""
        gitignore.write_text(before + separator + "\n".join(missing) + "\n", encoding="utf-8")
        written.append(Written(gitignore, "added to" if before else "wrote"))
    return written

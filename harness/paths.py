"""Where the harness's own files are: the fixtures, Lambda sources, compose files, scenarios and locustfiles the
CLI reads at run time. A module never counts `parent` hops from wherever it lives in the package tree.

They ship inside the package: the build maps the repository's top-level directories (where readers of the
repository look for them) under `harness/_bundled/` in the wheel. An editable install imports the checkout
itself, where the same files are those top-level directories. Nothing is looked up anywhere else.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

DISTRIBUTION = "dbunit-harness"

_PACKAGE = resources.files("harness")
# The files are handed to other programs (pytest, Locust, docker compose) by path, so the package must be
# installed as files, not imported from a zip.
if not isinstance(_PACKAGE, Path):
    raise ImportError(f"the harness must be installed as files on disk, not imported from {_PACKAGE}")

_BUNDLED = _PACKAGE / "_bundled"
# In a checkout (tests, an editable install): the repository. The tests read their own files from here.
REPO_ROOT = _PACKAGE.parent
DATA_ROOT = _BUNDLED if _BUNDLED.is_dir() else REPO_ROOT
FIXTURES_DIR = DATA_ROOT / "fixtures"
FUNCTIONS_DIR = DATA_ROOT / "functions"
COMPOSE_DIR = DATA_ROOT / "compose"
SCENARIOS_DIR = DATA_ROOT / "scenarios"
LOCUSTFILES_DIR = DATA_ROOT / "locustfiles"


def harness_version() -> str:
    """The installed distribution's version, as results and reports name it."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # Imported from a checkout that was never installed (no metadata to read).
        return "unknown (not installed)"

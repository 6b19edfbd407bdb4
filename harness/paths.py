"""Where the repository's own files are: the harness reads fixtures, functions and compose files by these
paths, so a module never counts `parent` hops from wherever it happens to live in the package tree.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "fixtures"
FUNCTIONS_DIR = REPO_ROOT / "functions"
COMPOSE_DIR = REPO_ROOT / "compose"

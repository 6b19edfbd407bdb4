"""The documentation stays true to the code and builds: generated reference pages match what the code renders
now, the site builds with mkdocs --strict (a broken link or anchor, a page missing from the nav fails it), and
every relative link in README.md names a file that exists.

Running under `make test` (so CI) means a change to a command, a setting or a metric that forgets the docs fails
here with the command that fixes it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from harness.paths import REPO_ROOT

GENERATOR = REPO_ROOT / "docs" / "_gen" / "reference.py"
# [text](target) with a target that is neither a URL nor a bare anchor.
MARKDOWN_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_match_the_code(generator: ModuleType) -> None:
    stale = generator.stale_pages()
    assert not stale, f"docs out of date with the code: {', '.join(stale)}; regenerate with: {generator.REGENERATE}"


def test_every_setting_has_a_meaning_on_the_configuration_page(generator: ModuleType) -> None:
    page = generator.render_configuration()
    for name in generator.MEANINGS:
        assert f"| `{name}` | `HARNESS_{name.upper()}` |" in page


def test_every_command_is_on_the_cli_page(generator: ModuleType) -> None:
    from harness.cli.main import build_parser

    page = generator.render_cli()
    commands = [name for name, _, _ in generator.subcommands(build_parser())]
    assert commands, "the parser has no subcommands"
    for name in commands:
        assert f"## `harness {name}`" in page


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        # Material's banner about its successor is not a warning about this site.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed (run `make docs-build`):\n{built.stderr[-4000:]}"


def test_every_relative_link_in_the_readme_names_a_file() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = MARKDOWN_LINK.findall(readme)
    missing = [t for t in targets if not (REPO_ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"

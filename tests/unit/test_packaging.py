"""The wheel carries every directory harness/paths.py names: pyproject.toml maps each top-level directory
to where paths.py looks for it inside an installed package (the installed-wheel integration test builds one)."""

import tomllib

from harness import paths
from harness.paths import REPO_ROOT

SHIPPED = (paths.FIXTURES_DIR, paths.FUNCTIONS_DIR, paths.COMPOSE_DIR, paths.SCENARIOS_DIR, paths.LOCUSTFILES_DIR)


def test_every_directory_paths_names_is_mapped_into_the_wheel():
    wheel = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for directory in SHIPPED:
        name = directory.name
        assert directory.is_dir(), directory
        assert name in wheel["only-include"], name
        assert wheel["sources"][name] == f"harness/_bundled/{name}"


def test_a_checkout_reads_its_own_top_level_directories():
    assert paths.DATA_ROOT == REPO_ROOT
    assert paths.SCENARIOS_DIR == REPO_ROOT / "scenarios"


def test_the_version_is_the_installed_distributions():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert paths.harness_version() == version

"""The AWS image builds from an installed wheel, where compose/ is harness/_bundled/compose and the services
package it copies aws_persist.py from sits at another relative place than in a checkout.

The wheel is built from this checkout and unpacked outside it (its layout, byte for byte); the harness
imported from there names the build context and Dockerfile, and the engine builds the image from them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.compose_spec import AWS_CONTEXT_VAR, AWS_DOCKERFILE_VAR, PIP_CA_VAR
from harness.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.compose]

TEST_TAG = "dbunit-harness-wheel-test/ministack:layout"

ASK_THE_WHEEL = (
    "import json, harness; from harness.backends.compose import aws_build_paths, host_ca_bundle; "
    "from harness.backends.compose_spec import COMPOSE_FILE; "
    "print(json.dumps({'package': harness.__file__, 'compose_file': str(COMPOSE_FILE), "
    "'ca': host_ca_bundle(), **aws_build_paths()}))"
)


@pytest.fixture(scope="module")
def unpacked_wheel() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dbunit-wheel-layout-"))
    try:
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"), str(REPO_ROOT)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=root,
        )
        assert built.returncode == 0, built.stderr[-3000:]
        (wheel,) = (root / "dist").glob("dbunit_harness-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(root / "site")
        yield root / "site"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_aws_image_builds_from_the_paths_an_installed_wheel_passes(docker_engine, unpacked_wheel):
    # The unpacked wheel first on the path, run from outside the checkout: the harness imported is the wheel's.
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    asked = subprocess.run(
        [sys.executable, "-c", ASK_THE_WHEEL], capture_output=True, text=True, timeout=120, env=env, cwd=unpacked_wheel
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    paths = json.loads(asked.stdout)
    assert Path(paths["package"]).is_relative_to(unpacked_wheel)
    compose_file = Path(paths["compose_file"])
    assert compose_file.is_relative_to(unpacked_wheel / "harness" / "_bundled" / "compose")
    # What compose resolves the aws build to, with the variables the harness writes to compose.env.
    env_of_the_harness = {
        **os.environ,
        "DBUNIT_DB_PASSWORD": "unused",
        "DBUNIT_REDIS_PASSWORD": "unused",
        "DBUNIT_TLS_DIR": str(unpacked_wheel),
        **{var: paths[var] for var in (AWS_CONTEXT_VAR, AWS_DOCKERFILE_VAR)},
    }
    config = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_of_the_harness,
        cwd=unpacked_wheel,
    )
    assert config.returncode == 0, config.stderr[-3000:]
    build = json.loads(config.stdout)["services"]["aws"]["build"]
    context, dockerfile = Path(build["context"]), Path(build["context"]) / build["dockerfile"]
    assert context.is_relative_to(unpacked_wheel) and (context / "aws_persist.py").is_file()
    assert dockerfile.is_relative_to(unpacked_wheel) and dockerfile.is_file()
    # Built by compose as the harness builds it, under a tag of this test's own (removed afterwards), through
    # the build cache: the same steps as the stack's own image, so a warm engine takes seconds.
    own_tag = unpacked_wheel.parent / "aws-tag.yml"
    own_tag.write_text(f"services:\n  aws:\n    image: {TEST_TAG}\n")
    try:
        built = subprocess.run(
            [
                *("docker", "compose", "-p", "dbunit-harness-wheel-test", "-f", str(compose_file), "-f", str(own_tag)),
                *("--progress", "plain", "build", "aws"),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**env_of_the_harness, PIP_CA_VAR: paths["ca"]},
            cwd=unpacked_wheel,
        )
        assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    finally:
        subprocess.run(["docker", "image", "rm", "--force", TEST_TAG], capture_output=True, timeout=120)

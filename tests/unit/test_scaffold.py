"""`harness init`: the files a team's repository starts from, refusing to overwrite, and that what it writes
is read by the harness's own loaders (settings, thresholds, unit spec, data spec, workload, CI YAML)."""

import subprocess
import sys

import pytest
import yaml

from harness.cli.main import main
from harness.config import resolve_settings
from harness.data.spec import load_data_spec
from harness.paths import FIXTURES_DIR
from harness.scaffold import InitError, planned_files, scaffold
from harness.spec import load_unit_spec
from harness.thresholds import load_thresholds
from harness.workload.file import load_workload

WORKFLOW = ".github/workflows/dbunit-signoff.yml"


def test_init_writes_every_file_and_says_so(tmp_path, capsys):
    assert main(["init", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    for name in [*planned_files(), ".gitignore"]:
        assert (tmp_path / "repo" / name).is_file(), name
        assert str(tmp_path / "repo" / name) in out
    assert "harness signoff --size ci" in out


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "unit.yaml").write_text("ours\n")
    assert main(["init", str(tmp_path)]) == 2
    assert "unit.yaml already exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit.yaml"]
    assert (tmp_path / "unit.yaml").read_text() == "ours\n"


def test_init_with_force_replaces_existing_files(tmp_path):
    (tmp_path / "unit.yaml").write_text("ours\n")
    written = {w.path.name: w.action for w in scaffold(tmp_path, force=True)}
    assert written["unit.yaml"] == "replaced"
    assert written["harness.toml"] == "wrote"
    assert (tmp_path / "unit.yaml").read_text() == (FIXTURES_DIR / "unit.yaml").read_text()


def test_init_adds_its_entries_to_an_existing_gitignore_once(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules/\nreports/")
    scaffold(tmp_path)
    assert (tmp_path / ".gitignore").read_text().splitlines() == [
        "node_modules/",
        "reports/",
        "# dbunit-harness: the stack's state (data, passwords, logs) and the sign-off's reports",
        ".harness/",
    ]


def test_init_into_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InitError, match="not a directory"):
        scaffold(tmp_path / "f")


def test_the_written_harness_toml_resolves_with_the_config_loader(tmp_path):
    scaffold(tmp_path)
    settings = resolve_settings(environ={}, cwd=tmp_path)
    assert settings.config_file == tmp_path / "harness.toml"
    assert settings.state_dir == (tmp_path / ".harness").resolve()
    assert settings.spec_file == (tmp_path / "unit.yaml").resolve()
    # The copied spec finds its design document beside it.
    assert load_unit_spec(tmp_path / "unit.yaml").document.is_file()
    thresholds = load_thresholds(tmp_path / "thresholds.yaml", unit_facts=settings.unit.facts)
    assert thresholds.by_id()


def test_the_written_data_spec_and_workload_load(tmp_path):
    scaffold(tmp_path)
    data = load_data_spec(tmp_path / "data.yaml")
    assert [t.name for t in data.tables] == ["items"]
    workload = load_workload(tmp_path / "workload.yaml")
    assert {s.id for s in workload.statements} == {"item_search", "item_by_id"}
    # Every statement has its parameters: replay runs it as written.
    assert workload.missing_params() == []


def test_the_github_workflow_installs_signs_off_and_uploads_the_reports(tmp_path):
    scaffold(tmp_path)
    workflow = yaml.safe_load((tmp_path / WORKFLOW).read_text())
    steps = workflow["jobs"]["signoff"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "apt-get install" in runs and "redis-server pgbouncer" in runs
    assert 'pip install "dbunit-harness' in runs
    assert "harness signoff --size ci" in runs
    # FAIL (4) and BROKEN (5) fail the job; WARN (3) passes it.
    assert "0|3) exit 0" in runs and 'exit "$code"' in runs
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    for name in ("report.html", "results.json", "junit.xml"):
        assert name in upload["with"]["path"]


def test_the_gitlab_job_signs_off_and_keeps_the_reports(tmp_path):
    scaffold(tmp_path)
    job = yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())["dbunit-signoff"]
    assert any("redis-server pgbouncer" in line for line in job["before_script"])
    assert job["script"] == ["harness signoff --size ci --thresholds thresholds.yaml --reports reports"]
    assert job["allow_failure"] == {"exit_codes": [3]}
    assert job["artifacts"]["when"] == "always"
    assert "reports/*/report.html" in job["artifacts"]["paths"]


def test_the_example_locustfile_imports_the_harness_users(tmp_path):
    scaffold(tmp_path)
    # In a process of its own: importing Locust monkey-patches the interpreter with gevent.
    loaded = subprocess.run(
        [sys.executable, "-c", "import locustfile; print(locustfile.ItemSearch.__mro__[1].__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "VectorSearchUser"


def test_the_ci_files_install_the_requirement_given_instead_of_the_index_pin(tmp_path, capsys):
    wheel = "https://example.invalid/dbunit_harness-0.1.0-py3-none-any.whl"
    assert main(["init", str(tmp_path), "--requirement", wheel]) == 0
    for name in (WORKFLOW, ".gitlab-ci.yml"):
        text = (tmp_path / name).read_text()
        assert f'pip install "{wheel}"' in text and "@HARNESS_REQUIREMENT@" not in text, name


def test_a_requirement_that_would_break_the_ci_files_is_refused_and_nothing_is_written(tmp_path, capsys):
    assert main(["init", str(tmp_path), "--requirement", 'x" && curl evil']) == 2
    assert "cannot be written into the CI files" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

"""The secret grep finds a secret however a file spells it, names it by label, and skips the 0600 holders."""

import json
from urllib.parse import quote

from harness.security.secret_scan import known_secrets, scan

SECRET = "s3cr3t/with+odd=chars-0123456789"


def test_a_secret_is_found_as_written_url_quoted_and_json_escaped(tmp_path):
    (tmp_path / "plain.log").write_text(f"login with {SECRET}\n")
    (tmp_path / "url.txt").write_text(f"postgresql://u:{quote(SECRET, safe='')}@h/db\n")
    (tmp_path / "doc.json").write_text(json.dumps({"x": SECRET + '"'}))
    (tmp_path / "clean.md").write_text("nothing here\n")
    count, leaks = scan([tmp_path], {"master": SECRET})
    assert count == 4
    assert sorted(leak.path.name for leak in leaks) == ["doc.json", "plain.log", "url.txt"]
    assert all(SECRET not in str(leak) for leak in leaks) and {leak.label for leak in leaks} == {"master"}


def test_the_files_that_hold_secrets_on_purpose_are_not_outputs(tmp_path):
    (tmp_path / "secrets.json").write_text(json.dumps({"master_password": SECRET}))
    assert scan([tmp_path], {"master": SECRET}) == (0, [])


def test_known_secrets_reads_the_state_and_ignores_short_values(tmp_path):
    (tmp_path / "secrets.json").write_text(json.dumps({"master_password": SECRET, "redis_password": "short"}))
    (tmp_path / "app_role.json").write_text(json.dumps({"role": "app", "password": "another-long-secret-value"}))
    assert known_secrets(tmp_path) == {
        "secrets.json:master_password": SECRET,
        "app_role.json:password": "another-long-secret-value",
    }

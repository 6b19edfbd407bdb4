"""The backup and drill commands refuse bad input with a message and exit 2 before touching any stack."""

import pytest

from harness.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["backup", "restore"],
        ["backup", "restore", "--latest", "--snapshot", "manual-x"],
        ["backup", "restore", "--to-time", "2026-11-29T14:00:00Z", "--latest"],
    ],
)
def test_a_restore_needs_exactly_one_target(argv, capsys):
    assert main(argv) == 2
    assert "exactly one of --snapshot ID, --to-time T, --latest" in capsys.readouterr().err


def test_a_restore_time_must_be_iso_8601(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["backup", "restore", "--to-time", "yesterday"])
    assert exited.value.code == 2
    assert "is not an ISO 8601 time" in capsys.readouterr().err


def test_an_unknown_drill_is_named_and_refused(capsys):
    assert main(["drill", "nope"]) == 2
    assert "no drill 'nope'" in capsys.readouterr().err

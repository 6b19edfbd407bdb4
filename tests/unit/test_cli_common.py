"""What every command shares (harness/cli/common.py): numeric arguments are refused with one line that
quotes the input cut short, whichever command reads them, and a missing stack is one error naming
`harness up`."""

from __future__ import annotations

import argparse

import pytest

from harness.cli.common import (
    NoRunningStackError,
    non_negative_int,
    positive_float,
    positive_int,
    running_stack,
    settings_from,
)
from harness.cli.main import main

HOSTILE = "9" * 50 + "x" * 5000


@pytest.mark.parametrize("check", [positive_int, non_negative_int, positive_float])
def test_a_hostile_numeric_argument_is_quoted_cut_short_on_one_line(check):
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        check(HOSTILE + "\n" + HOSTILE)
    message = str(refused.value)
    assert "\n" not in message
    assert len(message) < 400
    assert "more characters" in message


@pytest.mark.parametrize(
    ("check", "text", "expected"),
    [
        (positive_int, "0", "expected a positive whole number, got '0'"),
        (non_negative_int, "-1", "expected a whole number of 0 or more, got '-1'"),
        (positive_float, "nan", "expected a positive number, got 'nan'"),
        (positive_float, "-0.5", "expected a positive number, got '-0.5'"),
    ],
)
def test_a_number_out_of_range_is_refused_with_what_was_expected(check, text, expected):
    with pytest.raises(argparse.ArgumentTypeError, match=expected):
        check(text)


def test_numbers_in_range_are_read():
    assert (positive_int("3"), non_negative_int("0"), positive_float("0.5")) == (3, 0, 0.5)


def test_every_command_reads_the_same_long_argument_the_same_way(capsys):
    for argv in (["seed", "--users", HOSTILE], ["workload", "replay", "w.yaml", "--rate", HOSTILE, "--duration", "1"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "more characters" in capsys.readouterr().err


def test_no_running_stack_is_one_error_naming_harness_up(tmp_path):
    settings = settings_from(argparse.Namespace(backend="embedded", state_dir=str(tmp_path)))
    assert settings.state_dir == tmp_path
    with pytest.raises(NoRunningStackError, match=r"no running stack in .*: start it with `harness up`"):
        running_stack(settings)

"""``robustmi flags``: every flag the checks can raise is explained by the docs shipped in the package."""

import re
from pathlib import Path

import pytest

from robustmi.cli.flags_cmd import flag_docs
from robustmi.cli.main import main

CHECKS = Path(__file__).resolve().parents[2] / "src" / "robustmi" / "attacks" / "checks.py"


def test_every_flag_of_the_checks_is_documented():
    raised = set(re.findall(r'make_flag\(\s*"(\w+)"', CHECKS.read_text(encoding="utf-8")))
    assert raised and raised <= set(flag_docs())


def test_explains_one_flag_and_lists_all(capsys: pytest.CaptureFixture[str]):
    main(["flags", "zero_gradients"])
    out = capsys.readouterr().out
    assert out.startswith("zero_gradients\n") and "**What to do.**" in out and "## " not in out
    main(["flags"])
    assert "weaker_attack_stronger" in capsys.readouterr().out


def test_unknown_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as done:
        main(["flags", "nope"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "zero_gradients" in err

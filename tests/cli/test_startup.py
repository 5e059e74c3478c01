"""Start-up of ``robustmi``: ``--help`` and ``--version`` import no heavy module (torch, matplotlib, numpy,
scipy), so they answer in a fraction of a second; the option lists ``--help`` shows match the registries."""

import json
import subprocess
import sys

import pytest

import robustmi
from robustmi.cli.main import main

_HEAVY = ("torch", "matplotlib", "numpy", "scipy", "tqdm")

_PROBE = """
import json, sys
from robustmi.cli.main import main
try:
    main({argv!r})
except SystemExit as done:
    assert done.code in (None, 0), done.code
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _heavy_modules_after(argv: list[str]) -> list[str]:
    code = _PROBE.format(argv=argv, heavy=_HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["evaluate", "--help"], ["vulnerability", "--help"], ["data", "--help"]],
)
def test_help_and_version_import_no_heavy_module(argv: list[str]) -> None:
    assert _heavy_modules_after(argv) == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"robustmi {robustmi.__version__}"


def test_help_lists_match_the_registries() -> None:
    from robustmi.attacks import list_attack_presets
    from robustmi.cli import evaluate_cmd, vulnerability_cmd
    from robustmi.vulnerability import list_presets

    assert sorted(evaluate_cmd.ATTACK_PRESETS) == sorted(list_attack_presets())
    assert sorted(vulnerability_cmd.PRESETS) == sorted(list_presets())

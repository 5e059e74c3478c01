"""robustmi.progress: bars only on a terminal (nothing, no ``\\r``, in redirected stderr), overall ETA of
multi-run studies."""

from __future__ import annotations

import io
import sys

import pytest

from robustmi.progress import StageLog, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _use(bar) -> None:
    for _ in range(3):
        bar.update(1)
        bar.set_postfix({"loss": "0.5"}, refresh=False)
    bar.set_postfix(loss=0.25)  # both tqdm call styles, as the engine and Algorithm 2 use them
    bar.close()


def test_redirected_stderr_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()  # a file: isatty() is False
    monkeypatch.setattr(sys, "stderr", log)
    _use(progress_bar(3, "epoch 1/1"))
    assert log.getvalue() == ""


def test_terminal_shows_the_bar_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    _use(progress_bar(3, "epoch 1/1", enabled=False))
    assert screen.getvalue() == ""
    _use(progress_bar(5, "epoch 2/2", initial=2, unit="step"))
    assert "epoch 2/2" in screen.getvalue() and "5/5" in screen.getvalue()
    screen.seek(0)
    screen.truncate()
    log = StageLog(2, lambda line: None)
    for message in ("a", "b", "done"):
        log(message)
    assert "overall:   0%" in screen.getvalue() and "0/2" in screen.getvalue()  # the study's own bar


def test_stage_log_numbers_stages_and_estimates_the_rest() -> None:
    clock = iter([0.0, 0.0, 60.0, 180.0, 200.0])  # start, then one reading per message
    lines: list[str] = []
    log = StageLog(3, lines.append, clock=lambda: next(clock))
    for message in ("first run", "second run", "third run", "done"):
        log(message)
    assert lines == [
        "[1/3, 0:00 elapsed] first run",
        "[2/3, 1:00 elapsed, ~2:00 left] second run",
        "[3/3, 3:00 elapsed, ~1:30 left] third run",
        "done",
    ]
    assert log.opened == 3


def test_stage_log_prints_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    log = StageLog(1)
    log("only run")
    assert capsys.readouterr().out.endswith("elapsed] only run\n")

"""Run-folder safety: one writer at a time, readable files, resume writes config only once started."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from robustmi.errors import CheckpointError, ConfigError
from robustmi.runs import RunDir, load_config, save_checkpoint

HOLDER = """
    import sys, time
    from robustmi.runs import RunDir
    run = RunDir(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
"""


@dataclass
class Cfg:
    lr: float = 0.1
    steps: int = 3


def _hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(folder)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    proc = _hold(tmp_path / "run")
    try:
        with pytest.raises(CheckpointError, match=rf"in use by another robustmi process \(pid {proc.pid}\)"):
            RunDir(tmp_path / "run")
        with pytest.raises(CheckpointError, match="in use"):
            RunDir(tmp_path / "run", resume=True)
    finally:
        proc.kill()
        proc.wait()
    # the holder died (kill -9): its lock went with it; the stale pid in .lock does not block
    assert (tmp_path / "run" / ".lock").read_text().strip() == str(proc.pid)
    run = RunDir(tmp_path / "run")
    assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    run.close()


def test_same_process_may_reopen_and_close_releases(tmp_path):
    first = RunDir(tmp_path / "run")
    second = RunDir(tmp_path / "run", resume=True)  # re-entrant within one process
    second.close()
    first.close()
    proc = _hold(tmp_path / "run")  # released: another process can take it
    proc.kill()
    proc.wait()


def test_result_files_are_0644_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        run = RunDir(tmp_path / "run")
        run.write_config(Cfg())
        run.log_metrics({"step": 1})
        run.write_results({"acc": 0.5})
        save_checkpoint(run.checkpoint_dir / "last.pt", {}, {"epoch": 1})
    finally:
        os.umask(old)
    names = ("config.yaml", "metrics.jsonl", "results.json", "checkpoints/last.pt", "checkpoints/last.json")
    for name in names:
        assert oct((run.path / name).stat().st_mode & 0o777) == "0o644", name


def test_resume_writes_config_only_once_started(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(Cfg(), argv=["first"])
    before = run.config_path.read_bytes()
    resumed = RunDir(tmp_path / "run", resume=True)
    resumed.write_config(Cfg(lr=0.5), argv=["second"])
    assert run.config_path.read_bytes() == before  # a refused resume stops here: file unchanged
    resumed.flush_config()
    assert load_config(Cfg, run.config_path).lr == 0.5


def test_resume_config_flushed_by_first_write(tmp_path):
    RunDir(tmp_path / "run").write_config(Cfg())
    resumed = RunDir(tmp_path / "run", resume=True)
    resumed.write_config(Cfg(steps=9))
    resumed.log_metrics({"step": 1})
    assert load_config(Cfg, resumed.config_path).steps == 9


def test_drop_metrics(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in range(1, 6):
        run.log_metrics({"kind": "step", "step": step})
    assert run.drop_metrics(lambda r: r["step"] > 3) == 2
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_failed_start_leaves_no_folder(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    run.write_config(Cfg())
    run.discard_if_unstarted()
    assert not (tmp_path / "new" / "run").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep")
    RunDir(existing).discard_if_unstarted()  # not created by it: never removed
    assert (existing / "notes.txt").read_text() == "keep"
    started = RunDir(tmp_path / "started")
    save_checkpoint(started.checkpoint_dir / "last.pt", {}, {"epoch": 1})
    started.discard_if_unstarted()  # resumable: kept
    assert (tmp_path / "started" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999", "1e400/1"])
def test_non_finite_floats_refused(value):
    with pytest.raises(ConfigError, match="finite number"):
        load_config(Cfg, None, [f"lr={value}"])


def test_environment_records_the_cpu_capability_and_native_bf16():
    from robustmi.runs.environment import cpu_capability, environment_info

    cpu = environment_info()["cpu"]
    assert cpu == cpu_capability() and isinstance(cpu["native_bf16"], bool) and cpu["capability"]

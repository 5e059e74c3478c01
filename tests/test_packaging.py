"""A plain install, as a new user makes it: a fresh venv, ``pip install torch==2.13.0``, then the package
without extras. Every runtime dependency must come with it: the commands start, ``--help`` is quick, training
shows its progress bar on a terminal, the flag docs ship in the wheel. Slow (~2 min: two installs)."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _copy_sources(dest: Path) -> Path:
    """The files a build reads (not the shared working tree: pip would write build/ and egg-info into it)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", dest / "src", symlinks=True, ignore=ignore)
    (dest / "docs").mkdir(parents=True)
    shutil.copy2(REPO / "docs" / "flags.md", dest / "docs" / "flags.md")
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy2(REPO / name, dest / name)
    return dest


def _run(*argv: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ROBUSTMI_DATA", None)
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def _stderr_on_a_terminal(argv: list[str], cwd: Path) -> str:
    """Run ``argv`` with stderr on a pseudo-terminal (as a person would see it); return what it drew there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    chunks: list[bytes] = []

    def drain() -> None:  # the child blocks if nobody reads the terminal
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=600)
    os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert done.returncode == 0, done.stdout.decode()[-2000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    source = _copy_sources(root / "robustmi")
    _run(sys.executable, "-m", "venv", root / "venv", cwd=root)
    pip = root / "venv" / "bin" / "pip"
    _run(pip, "install", "-q", "torch==2.13.0", cwd=root)
    _run(pip, "install", "-q", source, cwd=root)  # no extras
    return root / "venv" / "bin"


def test_version_help_and_dependencies(venv: Path, tmp_path: Path) -> None:
    from robustmi import __version__

    assert _run(venv / "robustmi", "--version", cwd=tmp_path).strip() == f"robustmi {__version__}"
    times = []
    for _ in range(3):
        start = time.perf_counter()
        assert "train-encoder" in _run(venv / "robustmi", "--help", cwd=tmp_path)
        times.append(time.perf_counter() - start)
    assert min(times) < 1.5, f"robustmi --help took {min(times):.2f} s"
    installed = _run(venv / "pip", "list", "--format=freeze", cwd=tmp_path).lower()
    assert "pytest" not in installed  # the dev extra stayed out
    _run(venv / "python", "-c", "import scipy.io, tqdm, robustmi.data.svhn, robustmi.progress", cwd=tmp_path)


def test_commands_work_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    assert "synthetic-mnist" in _run(venv / "robustmi", "data", "check", "--json", cwd=tmp_path)
    assert "What to do" in _run(venv / "robustmi", "flags", "zero_gradients", cwd=tmp_path)
    drawn = _stderr_on_a_terminal(
        [str(venv / "robustmi"), "train-supervised", "--arch", "baseline-h", "--mode", "standard",
         "--dataset", "synthetic-mnist", "--preset", "smoke", "--out", "sup"],
        tmp_path,
    )
    assert "epoch 1/" in drawn and "step" in drawn  # the bar, counted from 1, over the whole run
    assert (tmp_path / "sup" / "results.json").is_file()
    out = _run(venv / "robustmi", "evaluate", "--model", "sup", "--attack", "pgd20", "--limit", "64",
               cwd=tmp_path)
    assert "pgd20" in out and (tmp_path / "sup" / "eval" / "results.json").is_file()

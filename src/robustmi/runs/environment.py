"""What produced a result: library versions, hardware, git commit, time; and which process may write.

Every ``results.json`` carries :func:`environment_info` so a number can be traced to the code and machine that
produced it. :func:`is_main_process` lets distributed (DDP) runs write files from rank 0 only.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robustmi


def is_main_process() -> bool:
    """True unless ``torch.distributed`` is initialised and this process's rank is not 0."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return True
    return dist.get_rank() == 0


def environment_info() -> dict[str, Any]:
    """Versions, device, threads, git commit and UTC time of the current process.

    Returns:
        ``{"python", "platform", "torch", "numpy", "robustmi", "torch_threads", "cpu", "device", "cuda",
        "world_size", "git_commit", "git_dirty", "timestamp"}``; ``git_commit``/``git_dirty`` are ``None``
        when the robustmi source is not in a git checkout (e.g. installed from a wheel) or git is missing.
    """
    cuda = torch.cuda.is_available()
    dist = torch.distributed
    distributed = dist.is_available() and dist.is_initialized()
    commit, dirty = _git_state(Path(robustmi.__file__).resolve().parent)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "robustmi": robustmi.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_capability(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "world_size": dist.get_world_size() if distributed else 1,
        "git_commit": commit,
        "git_dirty": dirty,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_capability() -> dict[str, Any]:
    """The CPU's vector capability and whether it computes bf16 natively (never assumed: read off the host).

    Returns:
        ``{"capability": torch's dispatch level ("AVX512", "AVX2", ...), "native_bf16": bool}``. Native bf16
        means the avx512_bf16 or amx_bf16 instructions (Linux ``/proc/cpuinfo``); without them bf16 autocast
        is emulated and several times slower than fp32 (benchmarks/RESULTS.md).
    """
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # older torch builds
        capability = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        lines = [line for line in text.splitlines() if line.startswith("flags")]
        flags = lines[0].split(":", 1)[1].split() if lines else []
    except OSError:  # not Linux: report what torch says only
        flags = []
    return {"capability": capability, "native_bf16": "avx512_bf16" in flags or "amx_bf16" in flags}


def _git_state(folder: Path) -> tuple[str | None, bool | None]:
    """``(commit, uncommitted changes?)`` of the git checkout holding ``folder``; ``(None, None)`` if none."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit, (bool(status) if status is not None else None)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):  # git not installed, folder gone, or hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


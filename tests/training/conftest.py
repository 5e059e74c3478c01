"""Training tests: one torch thread, no user data folder, and shared smoke-preset runs on real MNIST.

One thread: the runs are tiny, and on a shared 2-core machine a thread pool mostly contends.
The session-scoped runs (an encoder and a probe on it) are reused by several test modules, so each run kind is
trained once per test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTMI_DATA", raising=False)


@pytest.fixture(scope="session")
def smoke_encoder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A worst-case-MI encoder trained with the smoke preset on real MNIST: (run folder, results)."""
    from robustmi.training import get_preset, train_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "enc"
    cfg = get_preset("encoder", "smoke", objective="worst-case-mi", deterministic=True)
    results = train_encoder(cfg, out)
    torch.set_num_threads(threads)
    return out, results

"""Data tests never see the user's $ROBUSTMI_DATA, and run torch on one thread.

One thread: these tests do small tensor work, and on a shared 2-core machine the thread pool spends more time
contending than computing (a 60-step linear fit went from 0.3 s to 10 s).
"""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTMI_DATA", raising=False)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

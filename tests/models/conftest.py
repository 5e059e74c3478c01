"""One intra-op thread for the model tests: their tensors are tiny, and on a shared 2-core machine extra
threads only spin against other processes (measured: 4-50x slower under load)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

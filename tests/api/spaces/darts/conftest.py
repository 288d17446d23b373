"""The DARTS space tests run small networks: one intra-op thread is faster and steadier on a
shared machine, set once for each module."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_module():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

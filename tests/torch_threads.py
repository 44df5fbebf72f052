"""An autouse fixture for the modules that run small networks: one torch thread for their duration.

Small tensors on a busy shared 2-core host run about twice as fast on one thread (no
oversubscription); the previous thread count is restored afterwards.
"""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

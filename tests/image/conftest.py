"""Shared setup of the image-model tests."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def single_thread():
    """Run these tests on one intra-op thread, then restore the setting.

    The models here are tiny: with two threads on a busy machine, thread synchronisation costs
    more than the arithmetic (measured: ~50 s instead of ~8 s for this folder).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

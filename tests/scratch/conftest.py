"""Test settings for the scratch suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Run BLAS, OpenMP and torch single-threaded while a scratch test runs.

    The computations here are small, so extra threads mostly add
    synchronisation; on a small machine busy with other work that can slow
    these tests down several times over.  The previous limits are restored
    afterwards so other suites in the same session are unaffected.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(saved)

"""Test settings: one torch thread per process (tests run in parallel; oversubscribed threads crawl)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def quiet():
    """Overrides that keep test runs short and silent."""
    return {"train.progress": "none", "train.threads": 1}

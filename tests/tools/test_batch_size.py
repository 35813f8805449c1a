"""The batch-size finder's search, against a model that raises CUDA's out-of-memory error above a
threshold (a CPU has no such error); the CLI's refusal without a GPU."""

import pytest
import torch
from torch import nn

from tests.helpers import same_weights
from tests.tools.cli import invoke
from trainwise import load_config
from trainwise.errors import UserError
from trainwise.tools.batch_size import find_batch_size, is_out_of_memory

CFG = {"train.progress": "none", "train.threads": 1, "data.batch_size": 64}


class FakeMemory(nn.Module):
    """An MLP that 'runs out of memory' on training batches larger than ``capacity``."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        if self.training and len(x) > self.capacity:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} samples")
        return self.net(x)


@pytest.mark.parametrize("capacity, expected_power", [(300, 256), (20, 16), (5000, 1024)])
def test_steps_down_grows_and_bisects_to_the_boundary(capacity, expected_power):
    model = FakeMemory(capacity)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_batch_size(load_config(None, CFG), model=model, device="cpu")
    limit = result.limit  # the training-set size of digits
    boundary = min(capacity, limit)
    assert boundary - boundary // 32 <= result.batch_size <= boundary and result.power_of_two == expected_power
    assert result.tried[0]["batch"] == 64  # starts at data.batch_size
    if capacity < 64:
        assert [t["batch"] for t in result.tried[:3]] == [64, 32, 16] and [t["fits"] for t in result.tried[:3]] == [False, False, True]
    assert result.reached_limit == (capacity >= limit)
    assert same_weights(model.state_dict(), before)  # the probe steps were undone


def test_nothing_fits_and_other_errors_pass_through():
    with pytest.raises(UserError, match="not even a batch of 1"):
        find_batch_size(load_config(None, CFG), model=FakeMemory(0), device="cpu")

    class Broken(FakeMemory):
        def forward(self, x):
            if self.training and len(x) > 2:  # not a memory problem: must not be mistaken for one
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
            return self.net(x)

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        find_batch_size(load_config(None, CFG), model=Broken(10**6), device="cpu")
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory")) and not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cli_needs_a_gpu():
    result = invoke("batch-size", "--set", "model.hidden=[16]")
    assert result.exit_code == 2 and "measures GPU memory" in result.output

"""DDP constructor options: chosen from what the installed torch accepts, one bucket for one process."""

import torch
from torch.nn.parallel import DistributedDataParallel

from trainwise.distributed import ddp_options


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.BatchNorm1d(256), torch.nn.Linear(256, 10))


def test_one_process_puts_every_gradient_in_one_bucket():
    m = model()
    size_mb = sum(p.numel() * p.element_size() for p in m.parameters()) / 2**20
    one = ddp_options(DistributedDataParallel, m, world_size=1)
    assert one["bucket_cap_mb"] > size_mb and one["gradient_as_bucket_view"] is True
    assert "bucket_cap_mb" not in ddp_options(DistributedDataParallel, m, world_size=2)  # torch's buckets overlap all-reduces


def test_frozen_parameters_do_not_count_towards_the_bucket():
    m = model()
    full = ddp_options(DistributedDataParallel, m, 1)["bucket_cap_mb"]
    for p in m[0].parameters():
        p.requires_grad_(False)
    assert ddp_options(DistributedDataParallel, m, 1)["bucket_cap_mb"] < full


def test_options_follow_the_installed_torch():
    class OldDDP:  # a torch without batched_grad_copy and forward_sync_buffers (2.11)
        def __init__(self, module, device_ids=None, broadcast_buffers=True, bucket_cap_mb=None, gradient_as_bucket_view=False):
            pass

    class NewDDP:
        def __init__(self, module, device_ids=None, broadcast_buffers=None, bucket_cap_mb=None, gradient_as_bucket_view=False,
                     batched_grad_copy=False, forward_sync_buffers=None):
            pass

    old = ddp_options(OldDDP, model(), 2)
    assert old == {"gradient_as_bucket_view": True, "broadcast_buffers": False}
    new = ddp_options(NewDDP, model(), 2)
    assert new == {"gradient_as_bucket_view": True, "batched_grad_copy": True, "forward_sync_buffers": False}

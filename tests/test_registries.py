"""The tables that carry their own metadata: optimizers (builder, usual LRs) and data sources (loader, classes, kind)."""

import numpy as np
import pytest
import torch

from trainwise.config import Config, DataConfig, OptimConfig
from trainwise.data.sources import SOURCES
from trainwise.doctor.context import DATASET_CLASSES, LR_RANGES, TYPICAL_LR
from trainwise.errors import UserError
from trainwise.optim import build_optimizer
from trainwise.optimizers import OPTIMIZERS


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_builds_steps_and_has_a_usual_lr_range(name):
    opt = OPTIMIZERS[name]
    low, high = opt.lr_range
    assert 0 < low < opt.typical_lr < high
    assert (LR_RANGES[name], TYPICAL_LR[name]) == (opt.lr_range, opt.typical_lr)  # the doctor reads this table
    w = torch.nn.Parameter(torch.ones(3))
    torch_opt = build_optimizer([w], Config().replace({"optim.name": name}).optim, opt.typical_lr)
    (w**2).sum().backward()
    torch_opt.step()
    assert (w < 1).all() and torch_opt.param_groups[0]["lr"] == opt.typical_lr


def test_the_config_accepts_exactly_the_registered_optimizers():
    for name in OPTIMIZERS:
        assert OptimConfig(name=name).name == name
    with pytest.raises(UserError, match="optim.name"):
        Config().replace({"optim.name": "lion"})


@pytest.mark.parametrize("name", [n for n, s in SOURCES.items() if s.classes is not None and n != "fashion_mnist"])
def test_each_built_in_source_has_the_classes_and_kind_it_declares(name):
    source = SOURCES[name]
    raw = source.load(DataConfig(name=name))
    labels = np.concatenate([raw.y, raw.y_test]) if raw.y_test is not None else raw.y
    assert len(np.unique(labels)) == source.classes == DATASET_CLASSES[name]
    assert raw.image == (source.kind == "image")


def test_every_source_is_named_in_the_data_config_reference():
    described = DataConfig.model_fields["name"].description
    assert all(name in described for name in SOURCES)

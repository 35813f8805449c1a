"""Pretrained backbones: local weights (model.weights) into any model, timm architectures when timm is installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import trainwise
from trainwise.checkpointing import load_weights
from trainwise.config import Config
from trainwise.errors import UserError

QUIET = {"train.progress": "none", "train.threads": 1, "train.report": False, "doctor.live": False}
HAS_TIMM = importlib.util.find_spec("timm") is not None


def backbone(input_shape, out_dim):
    """A small convolutional net: named body layers and a head called ``head``, as timm models have."""
    c = input_shape[0]
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, out_dim))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A backbone trained on all ten digits; its final weights as safetensors and as a torch state dict."""
    out = tmp_path_factory.mktemp("pre") / "run"
    run = trainwise.fit(Config().replace({**QUIET, "model.name": "tests.test_pretrained:backbone", "train.epochs": 6, "optim.lr": 3e-3}), out=out)
    pt = out.parent / "weights.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in run.model.state_dict().items()}}, pt)
    return out / "checkpoints" / "final.safetensors", pt, run


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_weights_load_into_a_factory_model_and_fine_tune_frozen(pretrained, fmt, capsys):
    safetensors_path, pt_path, source = pretrained
    path = safetensors_path if fmt == "safetensors" else pt_path
    cfg = Config().replace({**QUIET, "model.name": "tests.test_pretrained:backbone", "model.weights": str(path), "data.classes": [0, 1, 2],
                            "finetune.freeze": ["*"], "train.epochs": 3, "optim.lr": 3e-3})
    trainer = trainwise.Trainer(cfg)
    expected = load_weights(safetensors_path)
    got = trainer.model.state_dict()
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):  # the body: loaded
        assert torch.equal(got[name].cpu(), expected[name])  # .cpu(): on a GPU machine the model lives there
    assert got["5.weight"].shape == (3, 32)  # the head: three classes now, freshly initialized
    assert "loaded 4 of 6 tensors" in capsys.readouterr().err
    run = trainer.fit()
    after = run.model.state_dict()
    assert all(torch.equal(after[n].cpu(), expected[n]) for n in ("0.weight", "3.weight"))  # frozen body unchanged
    assert run.summary["test"]["acc"] > 0.9  # a linear head on pretrained features separates 0, 1, 2


def test_layer_wise_lr_on_a_factory_model_with_weights(pretrained):
    cfg = Config().replace({**QUIET, "model.name": "tests.test_pretrained:backbone", "model.weights": str(pretrained[0]),
                            "finetune.layer_decay": 0.5, "finetune.head_lr_mult": 2.0, "train.epochs": 1})
    trainer = trainwise.Trainer(cfg)
    lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups})
    assert lrs == pytest.approx([0.25e-3, 0.5e-3, 2e-3])  # conv, hidden linear, head


def test_weights_mistakes(tmp_path, pretrained):
    with pytest.raises(UserError, match="not found.*nothing is downloaded"):
        trainwise.Trainer(Config().replace({**QUIET, "model.weights": str(tmp_path / "missing.safetensors")}))
    # an MLP shares no tensor with the conv backbone's file
    with pytest.raises(UserError, match="no tensor of model.weights"):
        trainwise.Trainer(Config().replace({**QUIET, "model.weights": str(pretrained[0]), "data.classes": [0, 1, 2]}))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read model.weights"):
        trainwise.Trainer(Config().replace({**QUIET, "model.weights": str(bad)}))


@pytest.mark.skipif(HAS_TIMM, reason="checks the message shown when timm is absent")
def test_timm_absent_says_how_to_get_it():
    with pytest.raises(UserError, match="needs timm.*pip install timm"):
        trainwise.Trainer(Config().replace({**QUIET, "model.name": "timm:resnet18"}))


@pytest.mark.skipif(not HAS_TIMM, reason="timm is not installed (optional; it needs torchvision, which has no CPU build here)")
def test_timm_backbone_with_local_weights_fine_tunes(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", num_classes=1000, in_chans=3)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "resnet18.safetensors")
    cfg = Config().replace({**QUIET, "model.name": "timm:resnet18", "model.weights": str(tmp_path / "resnet18.safetensors"),
                            "model.dropout": 0.2, "finetune.freeze": ["*"], "train.epochs": 1, "data.batch_size": 128})
    trainer = trainwise.Trainer(cfg)
    assert trainer.model.num_classes == 10 and trainer.model.drop_rate == 0.2
    # conv1 adapted from 3 channels to the digits' one; the body otherwise loaded as saved
    assert torch.equal(trainer.model.layer1[0].conv1.weight.cpu(), source.layer1[0].conv1.weight)
    run = trainer.fit()
    assert torch.equal(run.model.layer1[0].conv1.weight.cpu(), source.layer1[0].conv1.weight)  # frozen
    assert run.summary["epochs_run"] == 1

"""SAM's step uses the gradient at the perturbed weights; SWA's final weights are the mean of the epochs' weights."""

import pytest
import torch

import trainwise
from tests.techniques.probe import Probe
from trainwise.losses import task_loss
from trainwise.trainer import Trainer


def test_sam_step_applies_the_gradient_at_the_worst_nearby_weights(cnn_config):
    cfg = cnn_config(**{"sam.rho": 0.05, "optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": 0.1, "train.epochs": 1})
    seen = {}

    def before(state):  # the first batch and weights, as the step starts
        if state.step == 0 and "w" not in seen:
            seen["w"] = {k: v.detach().clone() for k, v in state.model.named_parameters()}
            seen["batch"] = (state.inputs, state.targets)

    def after(state):
        if state.step == 1 and "after" not in seen:
            seen["after"] = {k: v.detach().clone() for k, v in state.model.named_parameters()}

    trainer = Trainer(cfg, callbacks=[Probe("batch_start", before, order=100), Probe("step_end", after)])
    trainer.fit()
    # The same step by hand on a copy: gradient, ascent by rho * g / ||g||, gradient there, SGD step from w.
    model = trainer.model
    model.load_state_dict({**model.state_dict(), **seen["w"]})
    model.train()
    inputs, targets = seen["batch"]
    params = dict(model.named_parameters())
    g = torch.autograd.grad(task_loss(model(*inputs), targets, "multiclass"), list(params.values()))
    norm = torch.linalg.vector_norm(torch.stack([x.norm() for x in g]))
    with torch.no_grad():
        for p, gi in zip(params.values(), g):
            p.add_(0.05 * gi / norm)
    g2 = torch.autograd.grad(task_loss(model(*inputs), targets, "multiclass"), list(params.values()))
    for (name, w), gi in zip(seen["w"].items(), g2):
        assert torch.allclose(seen["after"][name], w - 0.1 * gi, atol=1e-6), name


def test_swa_final_weights_are_the_mean_of_the_averaged_epochs(cnn_config, tmp_path):
    cfg = cnn_config(**{"swa.enabled": True, "swa.start_epoch": 2, "swa.update_bn": False, "train.epochs": 4})
    ends = []
    probe = Probe("epoch_end", lambda s: ends.append({k: v.detach().clone() for k, v in s.model.state_dict().items()}))
    run = trainwise.fit(cfg, out=tmp_path / "r", callbacks=[probe])
    mean = {k: torch.stack([e[k].float() for e in ends[1:]]).mean(0) for k in ends[0]}
    for k, v in run.model.state_dict().items():
        assert torch.allclose(v.float(), mean[k], atol=1e-6), k
    assert run.summary["swa"] == {"epochs_averaged": 3, "start_epoch": 2, "batch_norm_recomputed": False}
    assert (tmp_path / "r" / "checkpoints" / "swa.safetensors").exists()


def test_swa_recomputes_batch_norm_statistics(cnn_config):
    cfg = cnn_config(**{"swa.enabled": True, "model.batch_norm": True, "train.epochs": 2})
    run = trainwise.fit(cfg)
    assert run.summary["swa"]["batch_norm_recomputed"] is True
    bn = next(m for m in run.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.1 and bn.num_batches_tracked > 0


def test_sam_refuses_fp16(cnn_config):
    with pytest.raises(trainwise.UserError, match="SAM with train.precision=fp16"):
        trainwise.fit(cnn_config(**{"sam.rho": 0.05, "train.precision": "fp16", "train.epochs": 1}))

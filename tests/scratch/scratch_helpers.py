"""Shared helpers for the scratch tests: mirror a scratch network in torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from trainwise.scratch import optimizers as scratch_optim

from trainwise.scratch.layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from trainwise.scratch.losses import BinaryCrossEntropy, CrossEntropy, Loss
from trainwise.scratch.network import Network, mlp


def torch_mirror(net: Network) -> torch.nn.Sequential:
    """A float64 ``torch.nn.Sequential`` with the same layers and weights as ``net``."""
    modules: list[torch.nn.Module] = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            linear = torch.nn.Linear(*layer.W.shape, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.b.copy()))
            modules.append(linear)
        elif isinstance(layer, LeakyReLU):
            modules.append(torch.nn.LeakyReLU(layer.slope))
        elif isinstance(layer, Softmax):
            modules.append(torch.nn.Softmax(dim=1))
        else:
            modules.append({Sigmoid: torch.nn.Sigmoid, Tanh: torch.nn.Tanh, ReLU: torch.nn.ReLU}[type(layer)]())
    return torch.nn.Sequential(*modules)


def torch_loss(loss: Loss, pred: torch.Tensor, target: np.ndarray) -> torch.Tensor:
    """The torch counterpart of a scratch loss on probabilities (mean reduction)."""
    if isinstance(loss, BinaryCrossEntropy):
        return torch.nn.functional.binary_cross_entropy(pred, torch.from_numpy(target.astype(float)))
    assert isinstance(loss, CrossEntropy)
    return torch.nn.functional.nll_loss(torch.log(pred), torch.from_numpy(target.astype(np.int64)))


def torch_params(model: torch.nn.Sequential) -> list[np.ndarray]:
    """Parameters of a mirrored model in scratch layout (``W`` as ``(in, out)``)."""
    out: list[np.ndarray] = []
    for module in model:
        if isinstance(module, torch.nn.Linear):
            out += [module.weight.detach().numpy().T.copy(), module.bias.detach().numpy().copy()]
    return out


# A shared training problem for comparing optimizer trajectories with torch.
STEPS = 100
N = 48


def problem(seed: int = 0) -> tuple[Network, np.ndarray, np.ndarray]:
    """A 4-8-3 tanh/softmax network and 48 labelled points (3 classes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 4))
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(int) + (x[:, 2] > 0.5).astype(int)
    return mlp([4, 8, 3], Tanh, Softmax, init="xavier", rng=rng), x, y


def batches(batch_size: int, seed: int = 1) -> list[np.ndarray]:
    """The example indices used at each step: reshuffled every epoch, as in a DataLoader."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < STEPS:
        order = rng.permutation(N)
        out += [order[i : i + batch_size] for i in range(0, N, batch_size)]
    return out[:STEPS]


def trajectories(
    make_scratch: Callable[[list[np.ndarray]], scratch_optim.Optimizer],
    make_torch: Callable[[Any], torch.optim.Optimizer],
    batch_size: int,
    schedule: Callable[[int], float] | None = None,
    torch_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Train the same network with both libraries; parameters after every step."""
    net, x, y = problem()
    model = torch_mirror(net)
    loss = CrossEntropy()
    ours, theirs = make_scratch(net.parameters()), make_torch(model.parameters())
    scheduler = torch_scheduler(theirs) if torch_scheduler else None
    ours_path, theirs_path = [], []
    for t, idx in enumerate(batches(batch_size)):
        if schedule is not None:
            ours.lr = schedule(t)
        _, grads = net.loss_and_grads(x[idx], y[idx], loss)
        ours.step(grads)
        ours_path.append([p.copy() for p in net.parameters()])

        theirs.zero_grad()
        torch_loss(loss, model(torch.from_numpy(x[idx])), y[idx]).backward()
        theirs.step()
        if scheduler is not None:
            scheduler.step()
        theirs_path.append(torch_params(model))
    return ours_path, theirs_path


def assert_same_path(ours: list[list[np.ndarray]], theirs: list[list[np.ndarray]]) -> None:
    """Every parameter within 1e-6 of torch's after each of the 100 steps."""
    assert len(ours) == len(theirs) == STEPS
    for step, (a, b) in enumerate(zip(ours, theirs)):
        diff = max(float(np.max(np.abs(p - q))) for p, q in zip(a, b, strict=True))
        assert diff < 1e-6, f"step {step + 1}: max |scratch - torch| = {diff:.2e}"
    # The comparison only means something if the parameters really moved.
    initial = problem()[0].parameters()
    moved = max(float(np.max(np.abs(p - q))) for p, q in zip(ours[-1], initial))
    assert moved > 1e-2

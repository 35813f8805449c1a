"""Shared helpers for the scratch tests: mirror a scratch network in torch."""

from __future__ import annotations

import numpy as np
import torch

from trainwise.scratch.layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from trainwise.scratch.losses import BinaryCrossEntropy, CrossEntropy, Loss
from trainwise.scratch.network import Network


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

"""Small building blocks shared by the registered models."""

from __future__ import annotations

import torch
from torch import nn

from trainwise.errors import unknown_name

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "selu": nn.SELU,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS, key="model.activation")
    return ACTIVATIONS[name]()


def per_layer(value: float | list[float], n: int, what: str = "model.dropout") -> list[float]:
    """One rate for every layer, or a list with one rate per layer."""
    if isinstance(value, list):
        if len(value) != n:
            from trainwise.errors import UserError

            raise UserError(f"{what} has {len(value)} rates", expected=f"one rate or {n} (one per layer)", received=value)
        return list(value)
    return [value] * n


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop a residual branch for whole samples, rescaling survivors by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)

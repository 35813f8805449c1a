"""Fine-tuning: pretrained weights in, frozen parameters, per-parameter learning-rate multipliers out.

Parameters are named as in ``model.named_parameters()`` (``"0.weight"``, ``"blocks.1.conv2.weight"``,
``"head.3.bias"``) and selected with shell-style patterns (``fnmatch``): ``"blocks.0.*"``, ``"*"``.

*Layers* for layer-wise LR decay are counted in parameter order, one per weight matrix or convolution
kernel; a bias or normalization parameter belongs to the layer before it. The *head* is the last layer
unless patterns name it. With ``layer_decay = d`` the head learns at lr x ``head_lr_mult`` and the layer
``k`` places below it at lr x d^k (ELECTRA / BEiT-style layer-wise decay).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn


def matching(names, patterns) -> list[str]:
    """The names that match any of the patterns, in the given order."""
    return [n for n in names if any(fnmatchcase(n, pat) for pat in patterns)]


def layer_index(model: nn.Module) -> dict[str, int]:
    """Parameter name -> layer number (0 = first layer), as the module docstring defines layers."""
    index: dict[str, int] = {}
    layer, owner = -1, None
    for name, p in model.named_parameters():
        module = name.rpartition(".")[0]
        if layer < 0 or (p.ndim >= 2 and module != owner):
            layer, owner = layer + 1, module
        index[name] = layer
    return index


def head_names(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    """Parameters of the head: those matching ``patterns``, or those of the last layer."""
    names = [n for n, _ in model.named_parameters()]
    if patterns:
        return matching(names, patterns)
    index = layer_index(model)
    last = max(index.values(), default=0)
    return [n for n in names if index[n] == last]


def lr_multipliers(model: nn.Module, head: list[str] | None = None, head_lr_mult: float = 1.0, layer_decay: float = 1.0,
                   overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Parameter name -> multiplier of the learning rate.

    Head parameters get ``head_lr_mult``; a layer ``k`` layers below the first head layer gets
    ``layer_decay ** k``; ``overrides`` (pattern -> multiplier, later patterns win) replace both.
    """
    index = layer_index(model)
    heads = set(head_names(model, head))
    top = min((index[n] for n in heads), default=max(index.values(), default=0) + 1)
    mults = {n: head_lr_mult if n in heads else layer_decay ** max(top - index[n], 0) for n in index}
    for pattern, mult in (overrides or {}).items():
        for name in matching(index, [pattern]):
            mults[name] = mult
    return mults


def frozen_names(model: nn.Module, freeze: list[str], head: list[str] | None = None) -> list[str]:
    """Parameters that ``freeze`` patterns select; the head is never frozen (``["*"]`` trains the head only)."""
    heads = set(head_names(model, head))
    return [n for n in matching([n for n, _ in model.named_parameters()], freeze) if n not in heads]


def set_trainable(model: nn.Module, names, trainable: bool) -> None:
    """requires_grad on the named parameters. Parameters without gradients are skipped by torch optimizers,
    so freezing needs no new optimizer, and unfreezing continues with the same one."""
    params = dict(model.named_parameters())
    for name in names:
        params[name].requires_grad_(trainable)


def norm_modules_of(model: nn.Module, names) -> list[nn.Module]:
    """Batch-norm modules whose parameters are all in ``names`` (to keep their running statistics fixed)."""
    names = set(names)
    out = []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
            if own and all(n in names for n in own):
                out.append(module)
    return out


@torch.no_grad()
def load_matching(model: nn.Module, weights: dict[str, torch.Tensor], skip=()) -> tuple[list[str], dict[str, str]]:
    """Copy every tensor of ``weights`` whose name and shape match the model's, except the names in ``skip``.

    Returns the loaded names and, for each skipped model tensor, why (a new head has another shape, or
    is skipped on purpose because the classes are new).
    """
    own = model.state_dict()
    loaded, skipped = [], {}
    for name, tensor in own.items():
        if name in skip:
            skipped[name] = "head, kept freshly initialized"
        elif name not in weights:
            skipped[name] = "not in the pretrained weights"
        elif tuple(weights[name].shape) != tuple(tensor.shape):
            skipped[name] = f"shape {tuple(weights[name].shape)} there, {tuple(tensor.shape)} here"
        else:
            tensor.copy_(weights[name].to(tensor.device, tensor.dtype))
            loaded.append(name)
    return loaded, skipped

"""Fine-tuning: pretrained weights in, frozen parameters, per-parameter learning-rate multipliers out.

Parameters are named as in ``model.named_parameters()`` (``"hidden1.linear.weight"``, ``"stage2.0.conv1.weight"``,
``"head.bias"``) and selected with shell-style patterns (``fnmatch``): ``"stage1.*"``, ``"*"``. For the built-in
models a pattern also matches a parameter's name in the numbered layout of older trainwise versions
(``"1.*"`` = ``hidden1.linear.*`` of an MLP; trainwise.models.names), so configs written then mean the same.

*Layers* for layer-wise LR decay are counted in parameter order, one per weight matrix or convolution
kernel; a bias or normalization parameter belongs to the layer before it. The *head* is the last layer
unless patterns name it. With ``layer_decay = d`` the head learns at lr x ``head_lr_mult`` and the layer
``k`` places below it at lr x d^k (ELECTRA / BEiT-style layer-wise decay).
"""

from __future__ import annotations

import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwise import checkpointing
from trainwise.callbacks.phase import set_phase
from trainwise.config import Config, FinetuneConfig
from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError
from trainwise.models.names import legacy_aliases, upgrade_keys
from trainwise.rundir import RunDir
from trainwise.techniques.registry import Technique, register


def matching(names, patterns, aliases: dict[str, str] | None = None, key: str | None = None) -> list[str]:
    """The names that match any of the patterns (by the name or its ``aliases`` entry), in the given order.

    ``key``: the config key the patterns come from; a pattern that matches nothing is then an error naming
    the model's layers (a misspelt or foreign layer name would otherwise freeze or rescale nothing, silently).
    """
    aliases = aliases or {}
    names = list(names)
    chosen: set[str] = set()
    for pat in patterns:
        found = {n for n in names if fnmatchcase(n, pat) or (n in aliases and fnmatchcase(aliases[n], pat))}
        if not found and key is not None:
            layers = list(dict.fromkeys(n.rpartition(".")[0] or n for n in names))
            shown = ", ".join(layers[:12]) + (f", ... ({len(layers)} layers)" if len(layers) > 12 else "")
            raise UserError(f"{key} pattern {pat!r} matches no parameter of the model",
                            expected="shell-style patterns over model.named_parameters() names, layers by module path",
                            received=f"a model with layers {shown}", fix=f"name one of these layers, e.g. {layers[0] + '.*' if layers else '*'!r}")
        chosen |= found
    return [n for n in names if n in chosen]


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
        return matching(names, patterns, legacy_aliases(model), key="finetune.head")
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
        for name in matching(index, [pattern], legacy_aliases(model), key="finetune.lr_mult"):
            mults[name] = mult
    return mults


def frozen_names(model: nn.Module, freeze: list[str], head: list[str] | None = None) -> list[str]:
    """Parameters that ``freeze`` patterns select; the head is never frozen (``["*"]`` trains the head only)."""
    heads = set(head_names(model, head))
    return [n for n in matching([n for n, _ in model.named_parameters()], freeze, legacy_aliases(model), "finetune.freeze") if n not in heads]


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
    weights = upgrade_keys(model, weights)  # a file saved from the numbered layout of an older trainwise
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


# ------------------------------------------------------------ the callback

def pretrained_path(init_from: str, weights: str = "final") -> Path:
    path = Path(init_from)
    if path.is_dir():
        path = RunDir(path).weights_file(weights)
    if not path.is_file():
        raise UserError(f"no pretrained weights at {path}", expected="a trainwise run directory or a .safetensors file",
                        fix="set finetune.init_from to a run directory written by trainwise train")
    return path


class Finetune(Callback):
    """Fine-tuning (trainwise.techniques.finetune): pretrained weights, a frozen body, unfreezing at an epoch.

    - FIT_START (fresh runs only): loads ``finetune.init_from``'s weights, skipping the head (``reset_head``:
      new classes need a new head, even when their number is the same) and tensors whose shape differs;
      which were loaded and which skipped goes to stderr and ``summary["finetune"]``.
    - EPOCH_START: before ``unfreeze_epoch`` the ``freeze`` parameters have ``requires_grad`` off (the phase
      label is ``frozen``), from it on they train (``unfrozen``). The optimizer holds every parameter from the start:
      torch optimizers skip parameters without gradients, so unfreezing needs no new optimizer and a resumed
      run is exact. Per-parameter learning rates (``head_lr_mult``, ``layer_decay``, ``lr_mult``) are set when
      the Trainer builds the optimizer.
    - BATCH_START: frozen batch-norm layers stay in eval mode, so their running statistics do not move.
    """

    order = ORDER["finetune"]

    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg
        self.frozen: list[str] = []
        self.norms: list = []
        self.active = False
        self.report: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        cfg = self.cfg
        if cfg.init_from and state.epoch == 0 and state.step == 0:
            path = pretrained_path(cfg.init_from, cfg.weights)
            skip = head_names(state.model, cfg.head or None) if cfg.reset_head else []
            loaded, skipped = load_matching(state.model, checkpointing.load_weights(path, state.device), skip)
            if not loaded:
                raise UserError(f"no tensor of {path} fits the model", expected="the same architecture (names and shapes)",
                                received=f"skipped: {', '.join(skipped)}", fix="fine-tune with the model config of the pretrained run")
            self.report = {"init_from": str(path), "loaded": loaded, "skipped": skipped}
            reasons = "; ".join(f"{k} ({v})" for k, v in skipped.items()) or "none"
            print(f"finetune: loaded {len(loaded)} tensors from {path}; skipped {len(skipped)}: {reasons}", file=sys.stderr)
        if self.report is not None:
            state.extras.setdefault("summary", {})["finetune"] = self.report
        self.frozen = frozen_names(state.model, cfg.freeze, cfg.head or None)
        self.norms = norm_modules_of(state.model, self.frozen) if cfg.freeze_norm_stats else []

    def on_epoch_start(self, state: State) -> None:
        if not self.frozen:
            return
        self.active = self.cfg.unfreeze_epoch is None or state.epoch < self.cfg.unfreeze_epoch
        set_trainable(state.model, self.frozen, not self.active)
        set_phase(state, "finetune", "frozen" if self.active else "unfrozen")

    def on_batch_start(self, state: State) -> None:
        if self.active:
            for module in self.norms:
                module.eval()

    def state_dict(self) -> dict[str, Any]:
        return {"report": self.report}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.report = state["report"]


def config_lr_multipliers(model: nn.Module, cfg: Config) -> dict[str, float] | None:
    """``finetune.head_lr_mult`` / ``layer_decay`` / ``lr_mult`` as per-parameter multipliers (None when all are 1)."""
    ft = cfg.finetune
    if ft.head_lr_mult == 1.0 and ft.layer_decay == 1.0 and not ft.lr_mult:
        return None
    return lr_multipliers(model, ft.head or None, ft.head_lr_mult, ft.layer_decay, ft.lr_mult)


register(Technique(
    "finetune",
    enabled=lambda cfg: bool(cfg.finetune.init_from or cfg.finetune.freeze or cfg.finetune.lr_mult)
    or cfg.finetune.head_lr_mult != 1.0 or cfg.finetune.layer_decay != 1.0,
    build=lambda cfg: [Finetune(cfg.finetune)] if cfg.finetune.init_from or cfg.finetune.freeze else [],
    lr_multipliers=config_lr_multipliers,
    example={"finetune.freeze": ["*"], "finetune.unfreeze_epoch": 2, "finetune.layer_decay": 0.7, "finetune.head_lr_mult": 2.0},
    docs="Fine-tuning"))

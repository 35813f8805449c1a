"""Pretrained backbones: timm architectures (``model.name = "timm:<arch>"``) and local weights (``model.weights``).

Nothing downloads: weights come from a local file only.

- ``timm:<arch>`` builds ``timm.create_model(arch, num_classes=out_dim, in_chans=C, **model.kwargs)`` when the
  optional package timm is installed. ``model.dropout`` (one rate) becomes timm's ``drop_rate`` (dropout
  before the classifier) and ``model.drop_path`` its ``drop_path_rate`` (stochastic depth), so that those
  two keys act on timm models as on trainwise's own; ``model.kwargs`` can set them (and anything else
  ``create_model`` takes, such as ``img_size``) directly. With ``model.weights``, timm loads the file
  itself (``pretrained_cfg_overlay={"file": PATH}``): it drops a classifier of another number of classes
  and adapts the first convolution to ``in_chans``.
- Any other model (registered or ``package.module:factory``) with ``model.weights``: the file's tensors
  are copied into the model where names and shapes match (a ``module.`` prefix from DataParallel/DDP is
  removed); a head with another number of classes keeps its fresh initialization. Which tensors were
  loaded and which skipped is printed. A file from which nothing fits is an error.

A weights file is a ``.safetensors`` file or a torch state dict (``.pt``/``.pth``/``.bin``, read with
``torch.load(weights_only=True)``; a dict holding the state dict under ``state_dict`` or ``model`` works too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError

TIMM_PREFIX = "timm:"


def build_timm(cfg: ModelConfig, input_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise UserError(f"model.name {cfg.name!r} needs timm", expected="the timm package installed", received="no module named timm",
                        fix="pip install timm (it needs torchvision), or choose another model.name") from None
    arch = cfg.name[len(TIMM_PREFIX):]
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        raise UserError(f"timm has no architecture {arch!r}", expected="a name timm.list_models() gives",
                        received=arch, fix=f"try one of {', '.join(close)}" if close else "see timm.list_models()")
    if len(input_shape) != 3:
        raise UserError(f"{cfg.name} needs images", expected="samples shaped (C, H, W)", received=f"samples shaped {tuple(input_shape)}",
                        fix="use image data (data.name = folder, digits, fashion_mnist ...) or another model.name")
    kwargs = {"num_classes": out_dim, "in_chans": input_shape[0]}
    if isinstance(cfg.dropout, float) and cfg.dropout > 0:
        kwargs["drop_rate"] = cfg.dropout
    if cfg.drop_path > 0:
        kwargs["drop_path_rate"] = cfg.drop_path
    kwargs |= cfg.kwargs
    if cfg.weights:
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(weights_file(cfg.weights))}}
    try:
        return timm.create_model(arch, **kwargs)
    except Exception as err:  # noqa: BLE001 - timm's own error, in one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"timm could not build {arch!r}", received=f"{type(err).__name__}: {first}",
                        fix="check model.kwargs and model.weights (a file for this architecture)") from None


def weights_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"model.weights file {path!r} not found", expected="a local .safetensors or .pt/.pth/.bin file (nothing is downloaded)",
                        fix="set model.weights to a weights file on this machine")
    return p


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (see the module docstring), names without a ``module.`` prefix."""
    p = weights_file(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader's failure is a bad file
        raise UserError(f"cannot read model.weights {p}", expected="a safetensors file or a torch state dict of tensors",
                        received=f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model.weights {p} holds no state dict", expected="a dict of parameter name -> tensor",
                        received=type(state).__name__)
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_into(model: nn.Module, path: str) -> None:
    """Copy the file's tensors into ``model`` where names and shapes match; print what was loaded and skipped."""
    from trainwise.techniques.finetune import load_matching

    weights = read_state_dict(path)
    loaded, skipped = load_matching(model, weights)
    if not loaded:
        some = ", ".join(list(weights)[:4])
        raise UserError(f"no tensor of model.weights {path} fits the model", expected="parameter names and shapes of this model",
                        received=f"names such as {some}", fix="use weights saved from the same architecture (model.name and its settings)")
    reasons = "; ".join(f"{k} ({v})" for k, v in list(skipped.items())[:6]) + (" ..." if len(skipped) > 6 else "")
    print(f"model.weights: loaded {len(loaded)} of {len(loaded) + len(skipped)} tensors from {path}"
          + (f"; kept fresh: {reasons}" if skipped else ""), file=sys.stderr)

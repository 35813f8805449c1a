"""Registered model builders and the entry point that builds any model from a config.

``build_model(cfg, input_shape, feature_dim, out_dim)``: ``cfg.name`` is a registered builder
(``list(MODELS)``) or ``package.module:factory``, a callable that gets ``input_shape``, ``feature_dim``,
``out_dim`` and ``cfg.kwargs`` as keyword arguments (it may ignore the ones it does not need by taking
``**kwargs``) and returns an ``nn.Module``. Models take the inputs positionally: ``model(x)``, or
``model(image, features)`` when the data has an extra feature vector.
"""

from __future__ import annotations

import importlib
import inspect

from torch import nn

from trainwise.config import ModelConfig
from trainwise.errors import UserError, unknown_name
from trainwise.models.cnn import build_cnn
from trainwise.models.convnet import build_convnet
from trainwise.models.fusion import build_fusion
from trainwise.models.mlp import build_mlp
from trainwise.models.resnet import build_resnet

MODELS = {"mlp": build_mlp, "cnn": build_cnn, "convnet": build_convnet, "resnet": build_resnet, "fusion": build_fusion}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], feature_dim: int, out_dim: int) -> nn.Module:
    if ":" in cfg.name:
        return _from_factory(cfg, input_shape, feature_dim, out_dim)
    if cfg.name not in MODELS:
        raise unknown_name("model", cfg.name, MODELS, key="model.name")
    return MODELS[cfg.name](cfg, input_shape=input_shape, feature_dim=feature_dim, out_dim=out_dim)


def _from_factory(cfg: ModelConfig, input_shape, feature_dim, out_dim) -> nn.Module:
    module_name, _, attr = cfg.name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"cannot import model factory {cfg.name!r}", expected="an importable 'package.module:callable'",
                        received=str(err), fix="check the name and that the package is on PYTHONPATH") from None
    offered = {"input_shape": input_shape, "feature_dim": feature_dim, "out_dim": out_dim, **cfg.kwargs}
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = offered if takes_all else {k: v for k, v in offered.items() if k in params}
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {cfg.name!r} did not return an nn.Module", received=type(model).__name__)
    return model

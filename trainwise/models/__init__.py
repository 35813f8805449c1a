"""Registered model builders and the entry point that builds any model from a config.

``build_model(cfg, input_shape, feature_dim, out_dim)``: ``cfg.name`` is a registered builder
(``list(MODELS)``), ``timm:<arch>`` (trainwise.models.pretrained) or ``package.module:factory``, a callable that gets ``input_shape``, ``feature_dim``,
``out_dim`` and ``cfg.kwargs`` as keyword arguments (those its signature names, or all of them when it
takes ``**kwargs``) and returns an ``nn.Module``. Models take the inputs positionally: ``model(x)``, or
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
from trainwise.models.pretrained import TIMM_PREFIX, build_timm, load_weights_into
from trainwise.models.resnet import build_resnet

MODELS = {"mlp": build_mlp, "cnn": build_cnn, "convnet": build_convnet, "resnet": build_resnet, "fusion": build_fusion}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], feature_dim: int, out_dim: int) -> nn.Module:
    """The model ``cfg`` names; with ``model.weights``, pretrained tensors loaded from a local file (trainwise.models.pretrained)."""
    if cfg.name.startswith(TIMM_PREFIX):
        return build_timm(cfg, input_shape, out_dim)  # timm loads model.weights itself
    if ":" in cfg.name:
        model = _from_factory(cfg, input_shape, feature_dim, out_dim)
    elif cfg.name not in MODELS:
        raise unknown_name("model", cfg.name, [*MODELS, "timm:<arch>"], key="model.name")
    else:
        model = MODELS[cfg.name](cfg, input_shape=input_shape, feature_dim=feature_dim, out_dim=out_dim)
    if cfg.weights:
        load_weights_into(model, cfg.weights)
    return model


FACTORY_ARGUMENTS = ("input_shape", "feature_dim", "out_dim")
FACTORY_CONTRACT = "factory(input_shape, feature_dim, out_dim, **model.kwargs) returning an nn.Module"


def _from_factory(cfg: ModelConfig, input_shape, feature_dim, out_dim) -> nn.Module:
    factory = _import_factory(cfg.name)
    offered = {"input_shape": input_shape, "feature_dim": feature_dim, "out_dim": out_dim, **cfg.kwargs}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: offer everything
        params = {}
    takes_all = not params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = offered if takes_all else {k: v for k, v in offered.items() if k in params}
    missing = [n for n, p in params.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in offered]
    unused = [k for k in cfg.kwargs if k not in params] if not takes_all else []
    if unused:
        raise UserError(f"model factory {cfg.name!r} takes no argument {unused[0]!r} (from model.kwargs)",
                        expected=f"keyword arguments of {attr_of(cfg.name)}: {', '.join(params)}", fix=f"remove model.kwargs.{unused[0]} or add it to the factory")
    if missing:
        raise UserError(f"model factory {cfg.name!r} needs arguments trainwise does not pass: {', '.join(missing)}",
                        expected=f"{FACTORY_CONTRACT}; other arguments come from [model.kwargs]",
                        fix=f"accept input_shape, feature_dim and out_dim (or **kwargs), or set model.kwargs.{missing[0]}")
    try:
        model = factory(**kwargs)
    except Exception as err:  # noqa: BLE001 - the user's code failed: one line that says where
        raise UserError(f"model factory {cfg.name!r} raised {type(err).__name__}: {_first_line(err)}",
                        expected=FACTORY_CONTRACT, received=f"arguments {', '.join(sorted(kwargs))}",
                        fix="fix the factory (call it yourself with these arguments to see the traceback)") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {cfg.name!r} did not return an nn.Module", expected=FACTORY_CONTRACT, received=type(model).__name__)
    return model


def _import_factory(name: str):
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UserError(f"bad model.name {name!r}", expected="a registered name or 'package.module:factory'",
                        fix=f"name a module and a callable, e.g. mypackage.models:make_net (or one of {', '.join(sorted(MODELS))})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"cannot import model factory {name!r}", expected="an importable 'package.module:callable'",
                        received=f"{type(err).__name__}: {_first_line(err)}", fix="check the name and that the package is on PYTHONPATH") from None
    except Exception as err:  # noqa: BLE001 - a syntax error or a failure while the user's module runs
        where = f" ({err.filename}, line {err.lineno})" if isinstance(err, SyntaxError) else ""
        raise UserError(f"importing the module of model factory {name!r} failed", expected="a module that imports cleanly",
                        received=f"{type(err).__name__}: {_first_line(err)}{where}", fix=f"run python -c 'import {module_name}' to see the traceback") from None
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UserError(f"module {module_name!r} has no {attr!r} (model.name)", expected=f"one of its callables: {', '.join(public[:12]) or 'none'}",
                        fix="check the name after the colon")
    factory = getattr(module, attr)
    if not callable(factory):
        raise UserError(f"model.name {name!r} is not callable", expected=FACTORY_CONTRACT, received=type(factory).__name__,
                        fix="name a function or an nn.Module class")
    return factory


def attr_of(name: str) -> str:
    return name.partition(":")[2]


def _first_line(err: BaseException) -> str:
    msg = getattr(err, "msg", None) if isinstance(err, SyntaxError) else None
    return ((msg or str(err)).strip().splitlines() or [""])[0][:200]

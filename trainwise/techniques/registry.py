"""The techniques trainwise knows: every module of this package registers one, at its end.

A technique is one config section, one file (its pure functions, then its thin callback, then
``register(Technique(...))``) and one section of docs/techniques.md. The Trainer asks ``active(config)``
which techniques a config turns on and takes from each what it declares: callbacks for the loop, a
change to the freshly built model, per-parameter LR multipliers, input transforms for evaluation.
``tests/techniques/test_registry.py`` checks every registered technique the same way: a short run of its
``example``, exact resume, a docs section and a valid example config.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from trainwise.config import Config
    from trainwise.core import Callback


def _nothing(cfg: Config) -> list:
    return []


@dataclass(frozen=True)
class Technique:
    name: str  # short name (the module's)
    enabled: Callable[[Config], bool]  # does this config turn it on?
    example: dict[str, Any]  # dotted config overrides that turn it on in a small image run
    docs: str  # heading of its section in docs/techniques.md
    build: Callable[[Config], list[Callback]] = _nothing  # its callbacks, in the order given
    setup_model: Callable[[torch.nn.Module, Config], None] | None = None  # on the built model, before the optimizer
    lr_multipliers: Callable[[torch.nn.Module, Config], dict[str, float] | None] | None = None  # param name -> LR multiplier
    eval_transforms: Callable[[Config], list[Callable]] | None = None  # inputs -> inputs before evaluation forwards
    module: str = field(default="", compare=False)


TECHNIQUES: dict[str, Technique] = {}


def register(technique: Technique) -> Technique:
    """Add a technique (called at the end of its module, which ``module`` then names)."""
    technique = replace(technique, module=technique.module or technique.enabled.__module__)
    if technique.name in TECHNIQUES and TECHNIQUES[technique.name].module != technique.module:
        raise ValueError(f"two techniques named {technique.name!r}")
    TECHNIQUES[technique.name] = technique
    return technique


def all_techniques() -> list[Technique]:
    """Every technique, in the order of their module names (imported here, once: a new file is all it takes)."""
    import trainwise.techniques as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name != "registry":
            importlib.import_module(f"{package.__name__}.{info.name}")
    return [TECHNIQUES[name] for name in sorted(TECHNIQUES, key=lambda n: TECHNIQUES[n].module)]


def active(config: Config) -> list[Technique]:
    """The techniques ``config`` turns on."""
    return [t for t in all_techniques() if t.enabled(config)]


def callbacks(config: Config) -> list[Callback]:
    return [cb for t in active(config) for cb in t.build(config)]


def setup_model(model: torch.nn.Module, config: Config) -> None:
    for t in active(config):
        if t.setup_model is not None:
            t.setup_model(model, config)


def lr_multipliers(model: torch.nn.Module, config: Config) -> dict[str, float] | None:
    """Param name -> LR multiplier (None: every parameter at the base LR); several techniques' multiply."""
    merged: dict[str, float] = {}
    for t in active(config):
        for name, mult in ((t.lr_multipliers(model, config) if t.lr_multipliers is not None else None) or {}).items():
            merged[name] = merged.get(name, 1.0) * mult
    return merged or None


def eval_transforms(config: Config) -> list[Callable]:
    return [fn for t in active(config) if t.eval_transforms is not None for fn in t.eval_transforms(config)]

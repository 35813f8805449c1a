"""Layers named by module path, and the numbered names the built-in models had before.

The built-in models name their parts (``hidden1.linear``, ``stage2.conv``, ``stem.conv``, ``stage2.0.conv1``,
``head``), so gradient norms, update ratios, dead units and fine-tuning patterns read as the network's
structure. Up to trainwise 0.x the ``mlp``, ``cnn`` and ``convnet`` models were flat ``nn.Sequential``\\ s
(parameters ``0.weight``, ``3.bias``), the ``fusion`` model's branches too (``image.0.weight``), and
``resnet`` had ``stem.0``, ``blocks.<i>`` and ``head.3``. Runs saved then still load:

* a module with a ``legacy`` map (old relative module path -> new one) renames old keys of a state dict
  as it is loaded (``_load_from_state_dict``, which torch calls on every module before its children), so
  ``load_state_dict`` -- resume, EMA/SWA swaps, best weights, ``evaluate``/``predict`` -- takes either layout;
* ``upgrade_keys(model, state)`` renames the same way for code that copies tensors by name
  (``finetune.init_from``, ``model.weights``);
* ``legacy_aliases(model)`` gives each parameter its old name, so ``finetune`` patterns written against
  the old names (``"1.*"``) keep their meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn


def rename(name: str, pairs: Iterable[tuple[str, str]]) -> str:
    """``name`` (a key or a module path) with each ``old -> new`` module path replaced in turn, on whole components."""
    for old, new in pairs:
        if name == old:
            name = new
        elif name.startswith(old + "."):
            name = new + name[len(old):]
    return name


class LegacyNames:
    """Mixin for an nn.Module whose ``legacy`` maps old relative module paths to new ones."""

    legacy: dict[str, str] = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # torch's hook for old layouts (BatchNorm uses it too)
        pairs = [(prefix + old, prefix + new) for old, new in self.legacy.items()]
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = rename(key, pairs)
            if new != key and new not in state_dict:
                state_dict[new] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Named(LegacyNames, nn.Sequential):
    """An nn.Sequential of named parts (each a module or a ``Named`` of its own).

    ``flat_before``: this container was a flat nn.Sequential whose numbered layers are, in order, the
    leaf modules here; ``legacy`` then maps ``"<i>"`` to the i-th leaf's path.
    """

    def __init__(self, parts: Iterable[tuple[str, nn.Module]], flat_before: bool = False):
        super().__init__()
        for name, module in parts:
            self.add_module(name, module)
        leaves = [path for path, m in self.named_modules() if path and not any(True for _ in m.children())]
        self.legacy = {str(i): path for i, path in enumerate(leaves)} if flat_before else {}


def part(**modules: nn.Module | None) -> Named:
    """A block of named layers (``linear``, ``norm``, ``act``, ...); a None layer is left out."""
    return Named((k, m) for k, m in modules.items() if m is not None)


def legacy_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(old, new) absolute module paths of every renamed part, outer parts first."""
    pairs = []
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        pairs += [(prefix + old, prefix + new) for old, new in getattr(module, "legacy", {}).items()]
    return pairs


def upgrade_keys(model: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with old-layout names of ``model``'s parameters and buffers renamed (others unchanged)."""
    pairs = legacy_pairs(model)
    if not pairs:
        return dict(state)
    own = set(model.state_dict())
    out = {}
    for key, value in state.items():
        new = key if key in own else rename(key, pairs)
        out[new if new in own and new not in state else key] = value
    return out


def legacy_aliases(model: nn.Module) -> dict[str, str]:
    """Parameter name -> its old-layout name, for the parameters of renamed parts."""
    back = [(new, old) for old, new in reversed(legacy_pairs(model))]
    if not back:
        return {}
    out = {}
    for name, _ in model.named_parameters():
        old = rename(name, back)
        if old != name:
            out[name] = old
    return out

"""Shared by the monitors: which parameters belong to which layer, and which steps are sampled.

A *layer* is the module that owns parameters directly, named by its path in ``named_modules()``
(``hidden1.linear`` for ``hidden1.linear.weight``; a timm or user model's own paths, ``blocks.0.attn.qkv``), so
the keys ``grad_norm/hidden1.linear``, ``update_ratio/hidden1.linear`` and ``dead_frac/hidden1.linear`` of
one layer line up in the History.
Per-layer reductions run as one ``_foreach_norm`` plus one ``index_add_`` so that a sampled step costs
a handful of kernel launches however deep the model is, and nothing waits for the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwise.core import Callback, State
from trainwise.models.names import legacy_pairs, rename


def layer_of(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


class LayerIndex:
    """Parameters grouped by owning module, in ``named_parameters`` order (input side first)."""

    def __init__(self, model: nn.Module):
        self.names: list[str] = []
        self.params: list[nn.Parameter] = []
        self.slot: list[int] = []  # layer index of each parameter
        for pname, p in model.named_parameters():
            if not p.requires_grad:
                continue
            layer = layer_of(pname)
            if layer not in self.names:
                self.names.append(layer)
            self.params.append(p)
            self.slot.append(self.names.index(layer))
        self._index_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def _index(self, slots: tuple[int, ...], device: torch.device) -> torch.Tensor:
        # Cached: building it each time would copy from host memory, which synchronises a CUDA stream.
        key = slots
        if key not in self._index_cache:
            self._index_cache[key] = torch.tensor(slots, dtype=torch.long, device=device)
        return self._index_cache[key]

    def per_layer_sq(self, tensors: list[torch.Tensor], slots: tuple[int, ...], groups: int = 1) -> torch.Tensor:
        """Sum of squared L2 norms of ``tensors`` per layer (float32, on the tensors' device).

        ``groups`` > 1: ``tensors`` are that many lists of the same parameters one after the other (their
        ``slots`` given once); the result holds each group's per-layer sums in turn, from one pass."""
        device = tensors[0].device
        norms = torch.stack(torch._foreach_norm(tensors)).float()  # stack promotes mixed dtypes itself
        layers = len(self.names)
        index = tuple(s + g * layers for g in range(groups) for s in slots) if groups > 1 else slots
        out = torch.zeros(groups * layers, device=device, dtype=torch.float32)
        return out.index_add_(0, self._index(index, device), norms * norms)

    def grads(self) -> tuple[list[torch.Tensor], tuple[int, ...]]:
        """Gradients that exist (frozen or unused parameters have none) and their layer slots."""
        pairs = [(p.grad, s) for p, s in zip(self.params, self.slot) if p.grad is not None]
        return [g for g, _ in pairs], tuple(s for _, s in pairs)


def is_sampled(state: State, every_n_steps: int) -> bool:
    """Sample the first step of the run and then every k-th: a host-side integer test, no sync."""
    return state.step % every_n_steps == 0


class EpochMeans:
    """Device-side running means of named values over the sampled steps of one epoch.

    Values arrive as a tensor per group of keys (one per layer, say) with a weight per key (0 for a
    sample to leave out), so adding a sample is two kernel launches and reading the epoch's means is one
    host transfer. ``state_dict`` makes mid-epoch resume exact: it holds the running sums of an epoch in
    progress (nothing once ``close`` marked the epoch written), and a restored state survives the next
    ``reset`` (the trainer fires EPOCH_START for the resumed epoch after loading it).
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._restored = False
        self._closed = False

    def add(self, keys: tuple[str, ...], values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add weighted ``values`` to the epoch's sums; ``weights=None``: each value counts once (two kernels, not
        six: the activation monitor's per-call values)."""
        if weights is None:
            weighted, counts = values, torch.ones_like(values)
        else:
            values = torch.where(weights > 0, values, 0.0)  # a NaN times 0 is still NaN
            weighted, counts = values * weights, weights
        if keys in self._groups:
            s, c = self._groups[keys]
            self._groups[keys] = (s.to(values.device) + weighted, c.to(values.device) + counts)
        else:
            self._groups[keys] = (weighted, counts.clone() if weights is not None else counts)

    def reset(self) -> None:
        self._closed = False
        if self._restored:
            self._restored = False
            return
        self._groups.clear()

    def close(self) -> None:
        """The epoch's means are in its record; a checkpoint taken now must not carry them into the next."""
        self._closed = True

    def means(self) -> dict[str, float]:
        if not self._groups:
            return {}
        keys = [k for group in self._groups for k in group]
        device = next(iter(self._groups.values()))[0].device
        sums = torch.cat([s.float().to(device) for s, _ in self._groups.values()])
        counts = torch.cat([c.float().to(device) for _, c in self._groups.values()])
        return dict(zip(keys, (sums / counts).tolist()))  # one host sync; 0/0 gives NaN on purpose

    def counts(self) -> dict[str, float]:
        """Samples behind each key's mean in the current (or last written) epoch."""
        return {k: float(v) for keys, (_, c) in self._groups.items() for k, v in zip(keys, c.tolist())}

    def rename(self, new_name) -> None:
        """Keys renamed by ``new_name(key)`` (restored sums of a checkpoint that named layers the old way)."""
        self._groups = {tuple(new_name(k) for k in keys): sums for keys, sums in self._groups.items()}

    def state_dict(self) -> dict[str, Any]:
        if self._closed:
            return {"groups": []}
        return {"groups": [[list(k), s.tolist(), c.tolist()] for k, (s, c) in self._groups.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._groups = {tuple(k): (torch.tensor(s), torch.tensor(c)) for k, s, c in state.get("groups", [])}
        self._restored = bool(self._groups)


class EpochMeanMonitor(Callback):
    """Base of the monitors: per-epoch means of sampled values, written into the record at EVAL_END."""

    step_work = "sampled"

    def __init__(self, every_n_steps: int = 50):
        self.every_n_steps = every_n_steps
        self._means = EpochMeans()

    def needs_eager_step(self, state: State) -> bool:
        return is_sampled(state, self.every_n_steps)

    def upgrade_restored(self, model: nn.Module) -> None:
        """At FIT_START of a resume: sums checkpointed under numbered layer names (``grad_norm/1``, written
        before the built-in models named their layers) continue under the module paths (``grad_norm/hidden1.linear``)."""
        pairs = legacy_pairs(model)
        if pairs:
            self._means.rename(lambda key: f"{key.partition('/')[0]}/{rename(key.partition('/')[2], pairs)}" if "/" in key else key)

    def on_epoch_start(self, state: State) -> None:
        self._means.reset()

    def on_eval_end(self, state: State) -> None:
        state.record.update(self._means.means())
        self._means.close()

    def state_dict(self) -> dict[str, Any]:
        return self._means.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._means.load_state_dict(state)

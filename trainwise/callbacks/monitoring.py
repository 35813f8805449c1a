"""Shared by the monitors: which parameters belong to which layer, and which steps are sampled.

A *layer* is the module that owns parameters directly, named by its path in ``named_modules()``
(``hidden1.linear`` for ``hidden1.linear.weight``; a timm or user model's own paths, ``blocks.0.attn.qkv``), so
the keys ``grad_norm/hidden1.linear``, ``update_ratio/hidden1.linear`` and ``dead_frac/hidden1.linear`` of
one layer line up in the History.
A sampled step takes one ``_foreach_norm`` (per-parameter norms) and keeps the result; per-layer sums,
square roots and ratios run once at the epoch's end, on the host, over all its samples (EpochMeans), so a
sampled step costs a few kernel launches however deep the model is, and nothing waits for the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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

    def grad_norms(self) -> torch.Tensor | None:
        """Each parameter's gradient norm in ``params`` order, as one row (one ``_foreach_norm`` and a stack):
        0 for a parameter without a gradient (frozen or unused this step), which adds nothing to its layer;
        None when no parameter has one."""
        grads = [p.grad for p in self.params]
        if all(g is not None for g in grads):
            return torch.stack(torch._foreach_norm(grads)) if grads else None
        present = [g for g in grads if g is not None]
        if not present:
            return None
        norms = iter(torch._foreach_norm(present))
        zero = torch.zeros((), device=present[0].device)
        return torch.stack([zero if g is None else next(norms) for g in grads])  # stack promotes mixed dtypes

    def per_layer_sq(self, row: list[float], groups: int = 1) -> list[float]:
        """Per-layer sums of squares of one row of per-parameter norms (``groups`` > 1: that many lists of the
        parameters one after the other; the result holds each group's layers in turn). Plain Python floats
        (float64): a sample is a few numbers, and a kernel launch or a numpy call per operation would cost
        more than the sums themselves."""
        layers, slot, params = len(self.names), self.slot, len(self.slot)
        out = [0.0] * (groups * layers)
        for g in range(groups):
            base = g * layers
            for i, v in enumerate(row[g * params : (g + 1) * params]):
                out[base + slot[i]] += v * v
        return out


GRAD_NORMS = "monitors.grad_norms"  # state.extras: this step's per-parameter gradient norms, for the NaN guard


def share_grad_norms(state: State, row: torch.Tensor) -> None:
    state.extras[GRAD_NORMS] = (state.epoch, state.batch_index, state.step, row)


def shared_grad_norms(state: State) -> torch.Tensor | None:
    """The gradient norms the gradient-norm monitor took at this very step, if it did (else None)."""
    entry = state.extras.get(GRAD_NORMS)
    if entry is None or entry[:3] != (state.epoch, state.batch_index, state.step):
        return None
    return entry[3]


def is_sampled(state: State, every_n_steps: int) -> bool:
    """Sample the first step of the run and then every k-th: a host-side integer test, no sync."""
    return state.step % every_n_steps == 0


Row = torch.Tensor | list  # one sample: a 1-D device tensor as a monitor took it, or floats restored from a checkpoint
# (keys, one row as floats) -> (values, weights or None): one value (and weight) per key
Reduce = Callable[[tuple[str, ...], list[float]], "tuple[list[float], list[float] | None]"]


class EpochMeans:
    """Means of named values over the sampled steps of one epoch, worked out once at the epoch's end.

    A sampled step only keeps its row (a 1-D device tensor; no kernel runs to add it). At the epoch's end
    all rows come to the host in one transfer and the arithmetic runs there on Python floats (float64): a
    handful of numbers per sample, where a kernel launch per operation, on the step or at the epoch's end,
    costs more than the step's own monitoring. With ``reduce=None`` a row holds the values themselves,
    each counted once; otherwise ``reduce(keys, row)`` turns a row into one value and one weight per key (a
    weight of 0 leaves the sample out; a key with no sample gets NaN).

    ``state_dict`` makes mid-epoch resume exact: it holds the rows of an epoch in progress (nothing once
    ``close`` marked the epoch written), so a resumed run reduces the very numbers an uninterrupted one
    would; a restored state survives the next ``reset`` (the trainer fires EPOCH_START for the resumed
    epoch after loading it). Checkpoints written before rows were kept hold running sums (``groups``);
    those are added to the reduced rows.
    """

    def __init__(self, reduce: Reduce | None = None) -> None:
        self.reduce = reduce
        self._rows: dict[tuple[str, ...], list[Row]] = {}
        self._sums: dict[tuple[str, ...], tuple[list[float], list[float]]] = {}  # restored from an older checkpoint
        self._restored = False
        self._closed = False

    def add(self, keys: tuple[str, ...], row: Row) -> None:
        rows = self._rows.get(keys)
        if rows is None:
            self._rows[keys] = [row]
        else:
            rows.append(row)

    def reset(self) -> None:
        self._closed = False
        if self._restored:
            self._restored = False
            return
        self._rows.clear()
        self._sums.clear()

    def close(self) -> None:
        """The epoch's means are in its record; a checkpoint taken now must not carry them into the next."""
        self._closed = True

    def _host_rows(self) -> dict[tuple[str, ...], list[list[float]]]:
        """Every group's rows as lists of floats, from one device-to-host transfer."""
        taken = [row for rows in self._rows.values() for row in rows if isinstance(row, torch.Tensor)]
        flat = torch.cat(taken).tolist() if taken else []  # cat promotes mixed dtypes; tolist gives floats
        out, at = {}, 0
        for keys, rows in self._rows.items():
            table = []
            for row in rows:
                if isinstance(row, torch.Tensor):
                    table.append(flat[at : at + len(row)])
                    at += len(row)
                else:
                    table.append(list(row))
            out[keys] = table
        return out

    def _totals(self) -> dict[tuple[str, ...], tuple[list[float], list[float]]]:
        """(sums, counts) of each group of keys, in the order the groups first appeared."""
        out = dict(self._sums)
        for keys, rows in self._host_rows().items():
            sums, counts = out.get(keys, ([0.0] * len(keys), [0.0] * len(keys)))
            sums, counts = list(sums), list(counts)
            for row in rows:
                values, weights = (row, None) if self.reduce is None else self.reduce(keys, row)
                for i, v in enumerate(values):
                    w = 1.0 if weights is None else weights[i]
                    if w > 0:  # a left-out sample adds nothing, a NaN included
                        sums[i] += v * w
                        counts[i] += w
            out[keys] = (sums, counts)
        return out

    def means(self) -> dict[str, float]:
        return {k: s / c if c else math.nan for keys, (sums, counts) in self._totals().items()
                for k, s, c in zip(keys, sums, counts)}

    def counts(self) -> dict[str, float]:
        """Samples behind each key's mean in the current (or last written) epoch."""
        return {k: c for keys, (_, counts) in self._totals().items() for k, c in zip(keys, counts)}

    def rename(self, new_name) -> None:
        """Keys renamed by ``new_name(key)`` (restored sums of a checkpoint that named layers the old way)."""
        self._sums = {tuple(new_name(k) for k in keys): sums for keys, sums in self._sums.items()}
        self._rows = {tuple(new_name(k) for k in keys): rows for keys, rows in self._rows.items()}

    def state_dict(self) -> dict[str, Any]:
        if self._closed:
            return {"groups": []}
        state: dict[str, Any] = {"groups": [[list(k), list(s), list(c)] for k, (s, c) in self._sums.items()]}
        if self._rows:  # the numbers as taken (float32 values are exact as Python floats)
            state["rows"] = [[list(k), rows] for k, rows in self._host_rows().items()]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = {tuple(k): ([float(v) for v in s], [float(v) for v in c]) for k, s, c in state.get("groups", [])}
        self._rows = {tuple(k): [list(r) for r in rows] for k, rows in state.get("rows", [])}
        self._restored = bool(self._sums or self._rows)


class EpochMeanMonitor(Callback):
    """Base of the monitors: per-epoch means of sampled values, written into the record at EVAL_END."""

    step_work = "sampled"

    def __init__(self, every_n_steps: int = 50, reduce: Reduce | None = None):
        self.every_n_steps = every_n_steps
        self._means = EpochMeans(reduce)

    @property
    def sample_every(self) -> int:  # the step events' handlers act on sampled steps only (see Callback.sample_every)
        return self.every_n_steps

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

"""The whole training step as one CUDA graph (``train.cuda_graphs = true``), without torch.compile.

A small network on a fast GPU spends most of a step launching kernels: the forward, the backward and
the optimizer are hundreds of launches of a few microseconds of work each. A CUDA graph records them
once and replays them with one launch. ``torch.compile(mode="reduce-overhead")`` does the same but
compiles first (about 20 s on the recipe); capturing the eager step takes about a second.

What is captured: forward (autocast), the task loss (label smoothing, soft MixUp/CutMix targets), the
AFTER_LOSS / AFTER_BACKWARD handlers whose device work is the same at every step (L1/L2 penalties),
backward, gradient clipping and the optimizer step. What stays outside, run eagerly each step: the
batch (indexing, augmentation, MixUp at BATCH_START), copying it into the graph's input buffers, the
LR schedule (the LR is a device tensor the graph reads, filled in place by trainwise.optim.LearningRate), the training
metrics and the STEP_END handlers (EMA, progress).

Steps that a monitor samples (every ``monitors.every_n_steps``: gradient norms, update ratios, dead
units, the NaN check) run eagerly, so the monitors see the same step they see without graphs. The graph
and the eager path share the parameters, gradients' consumers and optimizer state in place, so they can
alternate at any step. Each new batch shape (a last partial batch, a progressive-resizing phase) gets
its own graph after ``WARMUP_STEPS`` eager steps of that shape on a side stream (CUDA's lazy set-up, the
optimizer's state and cuBLAS workspaces must exist before capture).

Conditions (checked once; ``unsupported_reason`` says which one failed): a CUDA device, one process,
no torch.compile, fp32 or bf16 (fp16's GradScaler decides on the host), an optimizer that takes its LR
as a device tensor inside a graph (fused SGD / Adam / AdamW), and every callback with in-step handlers
declaring ``step_work`` (see trainwise.core.Callback).

Parity with the eager path: the same kernels in the same order on the same data, except that the LR is
a float32 tensor instead of a Python float (a relative difference of at most 6e-8 in the LR itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from trainwise.core import Callback, Event
from trainwise.losses import hard_labels

if TYPE_CHECKING:
    from trainwise.trainer import Trainer

WARMUP_STEPS = 3
FUSED_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def unsupported_reason(trainer: Trainer) -> str | None:
    """Why this run cannot replay its step as a CUDA graph (None: it can)."""
    cfg = trainer.config
    if trainer.device.type != "cuda":
        return f"train.cuda_graphs needs a CUDA device (this run is on {trainer.device.type})"
    if trainer.dist.world_size > 1:
        return "train.cuda_graphs works in one process (data-parallel runs synchronise gradients between steps)"
    if cfg.train.compile:
        return "train.cuda_graphs replaces train.compile; use one of them"
    if cfg.train.precision == "fp16":
        return "train.cuda_graphs needs train.precision fp32 or bf16 (fp16's loss scaler decides on the host every step)"
    opt = trainer.optimizer
    if not isinstance(opt, FUSED_OPTIMIZERS) or not all(g.get("fused") for g in opt.param_groups):
        return "train.cuda_graphs needs a fused optimizer: optim.name sgd, adam or adamw with optim.fused = true"
    for cb in trainer.callbacks:
        in_step = type(cb).on_event is not Callback.on_event or any(
            getattr(cb, f"on_{e.value}", None) is not None for e in (Event.AFTER_LOSS, Event.AFTER_BACKWARD))
        if in_step and getattr(cb, "step_work", None) not in ("same", "sampled"):
            return (f"train.cuda_graphs: callback {type(cb).__name__} acts inside the step without saying how "
                    "(set its step_work to 'same' or 'sampled', see trainwise.core.Callback)")
    return None


def _signature(inputs: tuple[torch.Tensor, ...], targets: torch.Tensor) -> tuple:
    return tuple((t.shape, t.dtype, t.stride()) for t in (*inputs, targets))


class _Captured:
    """One graph and its static buffers, for one batch shape."""

    def __init__(self, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor):
        self.inputs = tuple(torch.empty_like(t) for t in inputs)  # same shape, dtype and memory format
        self.targets = torch.empty_like(targets)
        self.graph = torch.cuda.CUDAGraph()
        self.outputs: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None

    def load(self, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor) -> None:
        for static, t in zip(self.inputs, inputs):
            static.copy_(t)
        self.targets.copy_(targets)


class GraphedStep:
    """Runs ``Trainer``'s training step as a replayed CUDA graph where it can (see the module docstring)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.graphs: dict[tuple, _Captured] = {}
        self.seen: dict[tuple, int] = {}
        self.side = torch.cuda.Stream(trainer.device)
        self.sampled = [cb for cb in trainer.callbacks if getattr(cb, "step_work", None) == "sampled"]
        self.replays = 0
        self.captures = 0
        self._replayed_last = False

    def lr_as_tensors(self) -> None:
        """The graph reads the LR from device memory; LearningRate.set fills tensor LRs in place."""
        for group in self.trainer.optimizer.param_groups:
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=self.trainer.device)

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state dict with plain-float LRs, so a checkpoint reads the same with or without graphs."""
        sd = self.trainer.optimizer.state_dict()
        sd["param_groups"] = [{k: float(v) if k == "lr" else v for k, v in g.items()} for g in sd["param_groups"]]
        return sd

    def step(self) -> None:
        """One training step: eager where a monitor samples it or the shape is new, otherwise a replay."""
        state, trainer = self.trainer.state, self.trainer
        self.lr_as_tensors()  # again after a checkpoint or rollback replaced the param groups
        if state.skip_step or any(cb.needs_eager_step(state) for cb in self.sampled):
            self._eager(trainer.train_step)
            return
        key = _signature(state.inputs, state.targets)
        captured = self.graphs.get(key)
        if captured is None:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= WARMUP_STEPS:
                self._eager(lambda: self._on_side_stream(trainer.train_step))
                return
            captured = self._capture(key)
        else:
            captured.load(state.inputs, state.targets)
        trainer.lr.set(state.step, state.lr_scale)  # fills the LR tensors the graph reads
        captured.graph.replay()
        self.replays += 1
        self._replayed_last = True
        self._after_step(captured)

    def _eager(self, fn) -> None:
        state = self.trainer.state
        state.loss = state.outputs = None  # let the last step's autograd graph go before this forward (see _capture)
        if self._replayed_last:
            # After a replay the parameters' .grad are the graph's buffers; an eager backward would add to them.
            self.trainer.optimizer.zero_grad(set_to_none=True)
            self._replayed_last = False
        fn()

    # ----------------------------------------------------------------------------------------------
    def _on_side_stream(self, fn) -> None:
        current = torch.cuda.current_stream(self.trainer.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            fn()
        current.wait_stream(self.side)

    def _capture(self, key: tuple) -> _Captured:
        trainer, state = self.trainer, self.trainer.state
        cfg = trainer.config
        captured = _Captured(state.inputs, state.targets)
        captured.load(state.inputs, state.targets)
        trainer.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes
        # The previous step's loss and outputs keep its autograd graph, and the parameters' gradient
        # accumulators with their stream, alive; the capture must create its own on the capture stream.
        state.loss = state.outputs = None
        torch.cuda.synchronize(trainer.device)
        with torch.cuda.graph(captured.graph):
            # autocast's cache of cast weights must be off inside a capture (it would hold stale casts)
            captured.outputs, state.loss = trainer.forward_loss(captured.inputs, captured.targets, autocast_cache=False)
            state.outputs = captured.outputs
            trainer.fire(Event.AFTER_LOSS)  # handlers with step_work "same" (penalties) are captured here
            state.loss.backward()
            trainer.fire(Event.AFTER_BACKWARD)
            if cfg.train.grad_clip_value is not None:
                torch.nn.utils.clip_grad_value_(trainer.model.parameters(), cfg.train.grad_clip_value)
            if cfg.train.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.train.grad_clip_norm)
            trainer.optimizer.step()
            # Detached, so that no autograd graph outlives the capture (see above).
            captured.loss, captured.outputs = state.loss.detach(), captured.outputs.detach()
        state.loss = state.outputs = None
        self.graphs[key] = captured
        self.captures += 1
        return captured

    def _after_step(self, captured: _Captured) -> None:
        trainer, state = self.trainer, self.trainer.state
        state.outputs, state.loss = captured.outputs, captured.loss
        state.step += 1
        # Copies: the metrics keep their tensors until the epoch is read, and the next replay overwrites the graph's.
        trainer.train_metrics.update_from_logits(captured.loss.clone(), captured.outputs.clone(),
                                                 hard_labels(captured.targets, trainer.task).clone(), trainer.task)

    def describe(self) -> dict[str, Any]:
        return {"graphs": self.captures, "replayed_steps": self.replays}

"""NaN guard: what happens when a step's loss or gradients are NaN/Inf (``monitors.nan_policy``).

* ``stop``: the full check (loss and every gradient) runs on sampled steps (every
  ``monitors.every_n_steps``) and is read there; the other steps cost nothing, because the trainer
  already sums every step's loss on the device for the epoch's ``train_loss``: a NaN/Inf loss at any
  step makes it NaN/Inf, and a NaN gradient under a finite loss poisons the weights, so the next loss
  shows it. At EVAL_END a non-finite ``train_loss`` stops training, naming the epoch and what to try.
  Checking every gradient every step cost 17% of a 6 ms GPU step (dozens of kernel launches; measured).
* ``skip``: the bad step is skipped (``state.skip_step = True``: the trainer zeroes the gradients and
  does not call ``optimizer.step``). Deciding before the step needs the flag on the host, so this policy
  costs one small sync per step, the same price ``torch.amp.GradScaler`` pays. An epoch in which every
  step was skipped stops training: the weights can no longer change.
* ``rollback``: like skip, and the model and optimizer are restored to the last good state (kept in
  memory at FIT_START and at the end of every clean epoch), the LR is multiplied by ``nan_lr_factor``
  and the record gets ``event = "nan_rollback"``. After ``nan_max_rollbacks`` rollbacks it stops.

Under ``train.precision = "fp16"`` only the loss is checked: an Inf gradient with a finite loss is a
loss-scale overflow that GradScaler skips by itself. Every policy records ``nonfinite_steps``. The rollback LR factor goes,
cumulative, into ``state.lr_scale``, which the trainer multiplies into the scheduled LR of every step.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from trainwise.callbacks.monitoring import is_sampled, shared_grad_norms
from trainwise.core import ORDER, Callback, State

POLICIES = ("stop", "skip", "rollback")


def all_finite(loss: torch.Tensor | None, model: torch.nn.Module, grads: bool = True,
               grad_norms: torch.Tensor | None = None) -> bool:
    """Are the loss and every gradient finite? One host read (a sync on a GPU) of the gradients' norms and
    the loss: for a few numbers, a transfer and Python's isfinite cost less than kernels that reduce them
    to one flag. ``grad_norms``: the gradients' norms, already taken at this step (the gradient-norm monitor)."""
    values = []
    if grads and grad_norms is not None:
        values.append(grad_norms)
    elif grads:  # a NaN/Inf entry makes its gradient's norm NaN/Inf
        present = [p.grad for p in model.parameters() if p.grad is not None]
        if present:
            values.append(torch.stack(torch._foreach_norm(present)))
    if loss is not None:
        values.append(loss.detach().reshape(1))
    return not values or all(map(math.isfinite, torch.cat(values).tolist()))  # cat promotes the dtypes


class NanGuard(Callback):
    # After the monitors have read the raw gradients, before anything else acts on them.
    order = ORDER["nan_guard"]

    def __init__(self, policy: str = "stop", lr_factor: float = 0.5, max_rollbacks: int = 3, every_n_steps: int = 50):
        if policy not in POLICIES:
            raise ValueError(f"nan_policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        self.lr_factor = lr_factor
        self.max_rollbacks = max_rollbacks
        self.every_n_steps = every_n_steps
        # stop: the check runs on sampled steps only; skip/rollback decide on the host at every step.
        self.step_work = "sampled" if policy == "stop" else None
        self.rollbacks = 0
        self.lr_scale = 1.0
        self._epoch_bad = 0  # host count (skip/rollback)
        self._epoch_steps = 0
        self._rolled_back_this_epoch = False
        self._good: tuple[dict[str, Any], dict[str, Any]] | None = None  # model, optimizer
        self._stopped = False

    # ------------------------------------------------------------------ snapshots (rollback)
    def _snapshot(self, state: State) -> None:
        model_sd = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self._good = (model_sd, copy.deepcopy(state.optimizer.state_dict()))

    def on_fit_start(self, state: State) -> None:
        state.lr_scale = self.lr_scale  # a resumed run keeps the lowered LR
        if self.policy == "rollback":
            self._snapshot(state)

    def on_epoch_start(self, state: State) -> None:
        self._epoch_bad, self._epoch_steps, self._rolled_back_this_epoch = 0, 0, False

    def on_epoch_end(self, state: State) -> None:
        if self.policy == "rollback" and self._epoch_bad == 0:
            self._snapshot(state)

    # ------------------------------------------------------------------ the check
    @property
    def sample_every(self) -> int | None:  # stop: the check runs on sampled steps only (see Callback.sample_every)
        return self.every_n_steps if self.policy == "stop" else None

    def needs_eager_step(self, state: State) -> bool:
        return is_sampled(state, self.every_n_steps)

    def on_after_backward(self, state: State) -> None:
        # Under fp16 an Inf gradient with a finite loss is a loss-scale overflow that GradScaler already
        # skips and answers by lowering the scale; only a non-finite loss is a problem there.
        self._epoch_steps += 1
        if self.policy == "stop":
            # Read at once: the sampled step's own number goes into the reason (state.step counts the
            # steps taken, so this one is state.step + 1).
            if is_sampled(state, self.every_n_steps) and not self._stopped and not all_finite(
                state.loss, state.model, state.config.train.precision != "fp16", shared_grad_norms(state)
            ):
                self._epoch_bad += 1
                self._stop(state, f"NaN/Inf loss or gradient at optimizer step {state.step + 1} (epoch {state.epoch}); "
                           "lower optim.lr, set train.grad_clip_norm=1.0, use train.precision=fp32, or set "
                           "monitors.nan_policy=skip or rollback to ride over isolated bad batches")
            return
        # skip/rollback must decide before optimizer.step: one sync
        if all_finite(state.loss, state.model, state.config.train.precision != "fp16", shared_grad_norms(state)):
            return
        self._epoch_bad += 1
        state.skip_step = True
        if self.policy == "rollback":
            self._rollback(state)

    def _rollback(self, state: State) -> None:
        if self.rollbacks >= self.max_rollbacks or self._good is None:
            self._stop(state, f"NaN/Inf again at step {state.step + 1} after {self.rollbacks} rollbacks "
                       f"(monitors.nan_max_rollbacks={self.max_rollbacks}); the LR is now x{self.lr_scale:g} of the "
                       "original. Lower optim.lr further, set train.grad_clip_norm=1.0, or check the data")
            return
        model_sd, optim_sd = self._good
        state.model.load_state_dict(model_sd)
        state.optimizer.load_state_dict(copy.deepcopy(optim_sd))
        self.rollbacks += 1
        self.lr_scale *= self.lr_factor
        state.lr_scale = self.lr_scale  # the trainer assigns the LR before the next step
        self._rolled_back_this_epoch = True

    def _stop(self, state: State, reason: str) -> None:
        self._stopped = True
        state.request_stop(reason)

    # ------------------------------------------------------------------ record
    def on_eval_end(self, state: State) -> None:
        if self.policy == "stop":
            state.record["nonfinite_steps"] = self._epoch_bad  # sampled steps found bad
            loss = state.record.get("train_loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                state.record["nonfinite_steps"] = max(state.record["nonfinite_steps"], 1)
                self._stop(state, f"NaN/Inf training loss in epoch {state.epoch}; lower optim.lr, set train.grad_clip_norm=1.0, "
                           "use train.precision=fp32, or set monitors.nan_policy=skip or rollback to ride over isolated bad batches")
        else:
            state.record["nonfinite_steps"] = self._epoch_bad
            if self.policy == "skip" and self._epoch_steps and self._epoch_bad == self._epoch_steps:
                self._stop(state, f"every step of epoch {state.epoch} had a NaN/Inf loss or gradient and was skipped, "
                           "so the weights can no longer change; lower optim.lr, set train.grad_clip_norm=1.0, "
                           "or check the inputs for NaN")
        if self._rolled_back_this_epoch:
            state.record["event"] = "nan_rollback"
            state.record["nan_rollbacks"] = self.rollbacks

    def state_dict(self) -> dict[str, Any]:
        # The in-memory snapshot is not saved: a resumed run starts from a checkpoint that is good by
        # construction, and takes a new snapshot at FIT_START.
        return {"rollbacks": self.rollbacks, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))

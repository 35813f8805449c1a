"""NaN guard: what happens when a step's loss or gradients are NaN/Inf (``monitors.nan_policy``).

* ``stop``: the check runs on the device every step (no sync); its result is read on sampled steps and
  at EVAL_END, and training stops with a reason that names the first bad step and what to try.
* ``skip``: the bad step is skipped (``state.skip_step = True``: the trainer zeroes the gradients and
  does not call ``optimizer.step``). Deciding before the step needs the flag on the host, so this policy
  costs one small sync per step, the same price ``torch.amp.GradScaler`` pays. An epoch in which every
  step was skipped stops training: the weights can no longer change.
* ``rollback``: like skip, and the model and optimizer are restored to the last good state (kept in
  memory at FIT_START and at the end of every clean epoch), the LR is multiplied by ``nan_lr_factor``
  and the record gets ``event = "nan_rollback"``. After ``nan_max_rollbacks`` rollbacks it stops.

Every policy records ``nonfinite_steps`` (bad steps in the epoch). The rollback LR factor is applied to
the optimizer's param groups (and to a torch scheduler's ``base_lrs``) and kept, cumulative, in
``state.extras["lr_scale"]`` for a trainer that sets the LR itself each step.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from trainwise.callbacks.monitoring import is_sampled
from trainwise.core import Callback, State

POLICIES = ("stop", "skip", "rollback")


def nonfinite_flag(loss: torch.Tensor | None, model: torch.nn.Module) -> torch.Tensor:
    """A 0-d bool tensor on the device: is the loss or any gradient NaN/Inf? (No host sync.)"""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    checks = []
    if loss is not None:
        checks.append(~torch.isfinite(loss.detach().float()).all())
    if grads:
        checks.append(~torch.isfinite(torch.stack([n.float() for n in torch._foreach_norm(grads)]).sum()))
    if not checks:
        return torch.zeros((), dtype=torch.bool)
    return torch.stack(checks).any()


class NanGuard(Callback):
    # After the monitors have read the raw gradients, before anything else acts on them.
    order = -50

    def __init__(self, policy: str = "stop", lr_factor: float = 0.5, max_rollbacks: int = 3, every_n_steps: int = 50):
        if policy not in POLICIES:
            raise ValueError(f"nan_policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        self.lr_factor = lr_factor
        self.max_rollbacks = max_rollbacks
        self.every_n_steps = every_n_steps
        self.rollbacks = 0
        self.lr_scale = 1.0
        self._epoch_bad = 0  # host count (skip/rollback)
        self._epoch_steps = 0
        self._rolled_back_this_epoch = False
        self._bad_dev: torch.Tensor | None = None  # device count (stop)
        self._first_bad_dev: torch.Tensor | None = None  # device: index within the epoch of the first bad step
        self._steps_dev: torch.Tensor | None = None
        self._epoch_first_step = 0
        self._good: tuple[dict[str, Any], dict[str, Any], float] | None = None  # model, optimizer, lr_scale
        self._stopped = False

    # ------------------------------------------------------------------ snapshots (rollback)
    def _snapshot(self, state: State) -> None:
        model_sd = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self._good = (model_sd, copy.deepcopy(state.optimizer.state_dict()), self.lr_scale)

    def on_fit_start(self, state: State) -> None:
        if self.policy == "rollback":
            self._snapshot(state)

    def on_epoch_start(self, state: State) -> None:
        self._epoch_bad, self._epoch_steps, self._rolled_back_this_epoch = 0, 0, False
        self._bad_dev = self._first_bad_dev = self._steps_dev = None
        self._epoch_first_step = state.step

    def on_epoch_end(self, state: State) -> None:
        if self.policy == "rollback" and self._epoch_bad == 0:
            self._snapshot(state)

    # ------------------------------------------------------------------ the check
    def on_after_backward(self, state: State) -> None:
        flag = nonfinite_flag(state.loss, state.model)
        self._epoch_steps += 1
        if self.policy == "stop":
            self._accumulate(flag)
            if is_sampled(state, self.every_n_steps):
                self._check_stop(state)
            return
        if not bool(flag):  # skip/rollback must decide before optimizer.step: one sync
            return
        self._epoch_bad += 1
        state.skip_step = True
        if self.policy == "rollback":
            self._rollback(state)

    def _accumulate(self, flag: torch.Tensor) -> None:
        bad = flag.long()
        if self._bad_dev is None:
            self._bad_dev = bad.clone()
            self._steps_dev = torch.ones_like(bad)
            self._first_bad_dev = torch.where(flag, torch.zeros_like(bad), torch.full_like(bad, -1))
            return
        assert self._steps_dev is not None and self._first_bad_dev is not None
        fresh = flag & (self._first_bad_dev < 0)
        self._first_bad_dev = torch.where(fresh, self._steps_dev, self._first_bad_dev)
        self._steps_dev = self._steps_dev + 1
        self._bad_dev = self._bad_dev + bad

    def _check_stop(self, state: State) -> None:
        if self._bad_dev is None or self._stopped:
            return
        bad, first = int(self._bad_dev), int(self._first_bad_dev)  # type: ignore[arg-type]
        if bad:
            step = self._epoch_first_step + first + 1
            self._stop(state, f"NaN/Inf loss or gradient at optimizer step {step} (epoch {state.epoch}); "
                       "lower optim.lr, set train.grad_clip_norm=1.0, use train.precision=fp32, or set "
                       "monitors.nan_policy=skip or rollback to ride over isolated bad batches")

    def _rollback(self, state: State) -> None:
        if self.rollbacks >= self.max_rollbacks or self._good is None:
            self._stop(state, f"NaN/Inf again at step {state.step + 1} after {self.rollbacks} rollbacks "
                       f"(monitors.nan_max_rollbacks={self.max_rollbacks}); the LR is now x{self.lr_scale:g} of the "
                       "original. Lower optim.lr further, set train.grad_clip_norm=1.0, or check the data")
            return
        model_sd, optim_sd, snapshot_scale = self._good
        state.model.load_state_dict(model_sd)
        state.optimizer.load_state_dict(copy.deepcopy(optim_sd))
        self.rollbacks += 1
        self.lr_scale *= self.lr_factor
        for group in state.optimizer.param_groups:
            group["lr"] *= self.lr_scale / snapshot_scale  # the restored groups carry the snapshot's LR
            if "initial_lr" in group:
                group["initial_lr"] *= self.lr_factor
        if hasattr(state.scheduler, "base_lrs"):
            state.scheduler.base_lrs = [lr * self.lr_factor for lr in state.scheduler.base_lrs]
        state.extras["lr_scale"] = self.lr_scale
        self._rolled_back_this_epoch = True

    def _stop(self, state: State, reason: str) -> None:
        self._stopped = True
        state.request_stop(reason)

    # ------------------------------------------------------------------ record
    def on_eval_end(self, state: State) -> None:
        if self.policy == "stop":
            self._check_stop(state)
            state.record["nonfinite_steps"] = int(self._bad_dev) if self._bad_dev is not None else 0
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

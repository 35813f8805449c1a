"""``train --autofix`` (``doctor.autofix = true``): repair a run while it trains instead of letting it fail.

At each epoch end the live doctor's diagnosis is read (after DoctorCallback). On a new error-level finding
the first of its fixes that applies and was not tried yet is taken, and what happens depends on what
the fix changes:

* the optimizer's settings or the step (``optim.lr``, ``optim.weight_decay``, ``train.grad_clip_*``):
  the weights are not to blame, only the last steps; **roll back** to the last good epoch -- the last
  in-memory snapshot before the finding's first epoch -- and continue from there with the fix (the
  restored optimizer keeps its moments; LR and decay are the fixed config's);
* anything else (``model.*``, ``init.*``, ``data.*``, the optimizer's kind): the network or its inputs
  must be rebuilt; **restart** from epoch 1 with the fix, same seed.

When the same finding comes back after a repair, a fix of another key is taken (a second, smaller LR
after a first LR cut did not help is rarely the answer). Fixes that cannot apply (see
trainwise.autofix.applicable) are skipped and listed in ``summary.json``'s ``repairs_skipped``.

Each repair is an ``event`` on the first record after it (``autofix_rollback`` / ``autofix_restart``,
with ``repair`` saying what), and a row in ``summary.json``'s ``repairs`` and in the report. At most
``doctor.max_repairs`` repairs; after that the run goes on (or stops, with ``doctor.stop_on_error``)
as without autofix.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trainwise.autofix.applicable import Sources, apply_fix, why_not
from trainwise.callbacks.progress import LogLines, ProgressBar
from trainwise.config import Config
from trainwise.core import ORDER, Callback, State
from trainwise.data import DataSplits
from trainwise.errors import UserError

# Fixes after which the weights so far are still worth keeping: they change how steps are taken.
CONTINUABLE = ("optim.lr", "optim.weight_decay", "train.grad_clip_norm", "train.grad_clip_value")
KEEP_SNAPSHOTS = 10  # recent epochs kept in memory for a rollback (plus the start)


class RepairNeeded(Exception):
    """Raised at an epoch end to hand the run back to :func:`fit_with_repairs` with a repair to make."""

    def __init__(self, repair: dict[str, Any]):
        super().__init__(f"autofix: {repair['finding']} -> {repair['change']}")
        self.repair = repair


class Autofix(Callback):
    order = ORDER["autofix"]

    def __init__(self, driver: _Driver, event: dict[str, Any] | None = None):
        self.driver = driver
        self.event = event  # written on the first record after a repair
        self.trainer = None  # set by the driver: snapshots are the trainer's own checkpoint state

    def on_fit_start(self, state: State) -> None:
        if state.epoch == 0:
            self.driver.snapshot(0, self.trainer)

    def on_eval_end(self, state: State) -> None:
        if self.event is not None:
            previous = state.record.get("event")
            state.record["event"] = f"{previous}+{self.event['event']}" if previous else self.event["event"]
            state.record["repair"] = self.event["repair"]
            self.event = None

    def on_epoch_end(self, state: State) -> None:
        repair = self.driver.pick(state)
        if repair is not None:
            raise RepairNeeded(repair)
        self.driver.snapshot(state.epoch, self.trainer)

    def on_fit_end(self, state: State) -> None:
        summary = state.extras.setdefault("summary", {})
        summary["repairs"], summary["repairs_skipped"] = list(self.driver.repairs), list(self.driver.skipped)


class _Driver:
    """What survives from one Trainer to the next: snapshots, the repairs made, the fixes tried."""

    def __init__(self, cfg: Config, sources: Sources, data: DataSplits):
        self.cfg, self.sources, self.data = cfg, sources, data
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.repairs: list[dict[str, Any]] = []
        self.tried: set[str] = set()
        self.changed: set[tuple[str, str]] = set()  # (finding code, config key) repaired once already
        self.skipped: list[dict[str, Any]] = []

    def snapshot(self, epoch: int, trainer) -> None:
        state = trainer.checkpoint_state(epoch_done=True)
        self.snapshots[epoch] = _to_cpu({k: v for k, v in state.items() if k != "config"})
        recent = sorted(e for e in self.snapshots if e > 0)
        for old in recent[:-KEEP_SNAPSHOTS]:
            del self.snapshots[old]

    def pick(self, state: State) -> dict[str, Any] | None:
        if len(self.repairs) >= self.cfg.doctor.max_repairs:
            return None
        diagnosis = state.extras.get("diagnosis") or []
        for finding in (f for f in diagnosis if f.severity == "error"):
            for change in finding.fixes:
                if change in self.tried:
                    continue
                self.tried.add(change)
                key = change.split("=", 1)[0].strip()
                # The same finding back after a change of this key: the key was not the cause, try another.
                reason = (f"{key} was changed for {finding.code} already and it came back" if (finding.code, key) in self.changed
                          else why_not(change, self.cfg, self.sources, self.data))
                if reason is not None:
                    self.skipped.append({"finding": finding.code, "change": change, "reason": reason})
                    continue
                self.changed.add((finding.code, key))
                action = "rollback" if key in CONTINUABLE else "restart"
                back_to = max((e for e in self.snapshots if e <= finding.epochs[0] - 1), default=0) if action == "rollback" else 0
                return {"epoch": state.epoch, "finding": finding.code, "severity": finding.severity, "change": change,
                        "action": action, "resumed_from": back_to, "why": finding.message}
        return None


def fit_with_repairs(cfg: Config, *, model: torch.nn.Module | None = None, data: DataSplits | None = None,
                     callbacks: Sequence[Callback] = (), out: str | Path | None = None):
    """Train like ``fit``, repairing on error-level findings (see the module docstring); returns the Run."""
    from trainwise.data import prepare_data
    from trainwise.trainer import Trainer

    if not cfg.doctor.live:
        raise UserError("doctor.autofix needs the live doctor", received="doctor.live = false", fix="set doctor.live=true")
    given_data = data
    data = data if data is not None else prepare_data(cfg.data)
    instance = model
    sources = Sources(model=(lambda c, d: instance) if instance is not None else None, data=given_data)
    driver = _Driver(cfg, sources, data)
    event = None
    resume: dict[str, Any] | None = None
    while True:
        guard = Autofix(driver, event)
        trainer = Trainer(driver.cfg, model=instance, data=data, callbacks=[*callbacks, guard], run_dir=out)
        if trainer.dist.world_size > 1:
            raise UserError("doctor.autofix runs in one process", received=f"{trainer.dist.world_size} processes",
                            fix="train without --devices, or set doctor.autofix=false")
        guard.trainer = trainer
        if resume is not None:
            old_cfg, records, snap = resume
            trainer.history.records = records
            trainer.load_checkpoint(copy.deepcopy(snap))
            _carry_over(trainer, old_cfg, driver.cfg)
        try:
            run = trainer.fit()
        except RepairNeeded as need:
            repair = need.repair
            old_cfg = driver.cfg
            driver.cfg = apply_fix(old_cfg, repair["change"])
            records = list(trainer.history.records)
            if repair["action"] == "rollback":
                resume = (old_cfg, records, driver.snapshots[repair["resumed_from"]])
                for e in [e for e in driver.snapshots if e > repair["resumed_from"]]:
                    del driver.snapshots[e]
            else:
                resume = None
                repair["discarded_epochs"] = len(records)
                if instance is not None and 0 in driver.snapshots:  # a fresh start for the caller's own module
                    instance.load_state_dict(driver.snapshots[0]["model"])
                driver.snapshots.clear()
                if given_data is None and driver.cfg.data != old_cfg.data:
                    data = driver.data = prepare_data(driver.cfg.data)
            driver.repairs.append(repair)
            event = {"event": f"autofix_{repair['action']}", "repair": f"{repair['finding']}: {repair['change']} "
                     f"({'rolled back to epoch ' + str(repair['resumed_from']) if repair['action'] == 'rollback' else 'restarted'})"}
            _say(trainer, f"epoch {repair['epoch']}: autofix: {event['repair']}")
            continue
        return run


def _say(trainer, line: str) -> None:
    """Through the progress display, as the live doctor's lines go (nothing with train.progress = none)."""
    for cb in trainer.callbacks:
        if isinstance(cb, (LogLines, ProgressBar)):
            cb.write(line)
            return


def _carry_over(trainer, old: Config, new: Config) -> None:
    """The restored optimizer holds the old config's weight decay: move it to the fixed value.

    The LR needs nothing: the Trainer's LearningRate assigns it before every step from the config it was
    built with (the fixed one).
    """
    if new.optim.weight_decay != old.optim.weight_decay:
        for group in trainer.optimizer.param_groups:
            if group.get("weight_decay"):  # groups exempt from decay (biases, norms) stay at 0
                group["weight_decay"] = new.optim.weight_decay


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj

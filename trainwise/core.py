"""Events, State and the Callback base: the contract between the Trainer and every technique.

The loop, with each event marked (this is the whole of ``Trainer.fit``)::

    FIT_START
    for epoch in epochs:
        EPOCH_START
        for batch in train batches:
            BATCH_START            # callbacks may replace state.inputs / state.targets (augmentation, MixUp)
            loss = loss_fn(model(*inputs), targets)
            AFTER_LOSS             # callbacks may add to state.loss (penalties)
            loss.backward()
            AFTER_BACKWARD         # gradients are present and unscaled: monitors, clipping
            lr = base * lr_at(step) * lr_scale; optimizer.step()
            STEP_END               # weights changed: EMA, update ratios, mid-epoch checkpoints
        evaluate on validation
        EVAL_END                   # state.record holds the epoch's metrics; monitors add theirs
        EPOCH_END                  # the record is in the History: early stopping, checkpoints, doctor
        if state.stop: break
    FIT_END                        # restore best weights; then the final test, summary, findings, report
    RUN_END                        # the run directory is complete: loggers upload summary, findings, report
    EXCEPTION                      # (instead of the rest) when anything raised; state.error holds it

Within an event, callbacks run by ``order`` (the ``ORDER`` table below); ``Trainer.describe_loop()``
(CLI: ``trainwise train CONFIG --show-loop``) prints which callbacks a run has at each event.

Callbacks change :class:`State` and nothing else; stopping is ``state.stop = True``. Every callback that
keeps state between events implements ``state_dict``/``load_state_dict`` so that resume is exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from trainwise.config import Config
    from trainwise.history import History


class Event(enum.Enum):
    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    BATCH_START = "batch_start"
    AFTER_LOSS = "after_loss"
    AFTER_BACKWARD = "after_backward"
    STEP_END = "step_end"
    EVAL_END = "eval_end"
    EPOCH_END = "epoch_end"
    FIT_END = "fit_end"
    RUN_END = "run_end"
    EXCEPTION = "exception"

    # Members are singletons: hashing by identity (C) instead of Enum's hash of the name (Python) makes the
    # trainer's per-event handler lookup, four times a step, a plain dict lookup.
    __hash__ = object.__hash__


# The events of one training step, in the order they fire (see ``Callback.sample_every``).
STEP_EVENTS = (Event.BATCH_START, Event.AFTER_LOSS, Event.AFTER_BACKWARD, Event.STEP_END)


@dataclass
class State:
    """Everything a callback may read or change during a run."""

    config: Config
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    history: History
    device: torch.device
    task: str  # "multiclass" | "binary"
    num_classes: int
    run_dir: Path | None = None
    epoch: int = 0  # 1-based number of the current (or last finished) epoch
    step: int = 0  # optimizer steps taken so far
    batch_index: int = 0  # index of the current batch within the epoch
    steps_per_epoch: int = 0
    inputs: tuple[torch.Tensor, ...] = ()
    targets: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the current epoch's metrics
    phase: str | None = None
    stop: bool = False
    stop_reason: str | None = None
    skip_step: bool = False  # set by a callback at AFTER_BACKWARD to skip optimizer.step (NaN guard)
    lr_scale: float = 1.0  # multiplies the scheduled LR of every step (the NaN guard lowers it on a rollback)
    error: BaseException | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # scratch space shared between callbacks
    augment: bool = True  # training augmentation on (a progressive-resizing phase may turn it off)
    eval_transforms: list[Callable] = field(default_factory=list)  # inputs -> inputs before evaluation forwards
    evaluate: Callable[[str], dict[str, Any]] | None = None  # the Trainer's evaluate(split), e.g. for EMA weights
    forward_loss: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None  # the Trainer's forward_loss(inputs, targets)
    train_loader: Any = None  # the training batches (``train_loader.batches(epoch)``), e.g. for SWA's batch-norm pass

    def request_stop(self, reason: str) -> None:
        self.stop = True
        self.stop_reason = self.stop_reason or reason


# Where each built-in callback runs among the others at an event (lower first; a callback without an
# entry, such as a user's, has order 0, and ties keep the order the callbacks were given in).
# ``Trainer.describe_loop()`` prints the result for a run.
ORDER: dict[str, int] = {
    "grad_norms": -100,  # reads the raw gradients before anything acts on them
    "update_ratios": -90,  # copies the weights before the step
    "activations": -80,  # forward hooks on sampled steps
    "nan_guard": -50,  # decides about the step once the monitors have read it; clipping comes after all of these
    "sam": -40,  # its second pass after the monitors and the NaN guard read the first gradient, before clipping
    "finetune": -20,  # loads pretrained weights before anything copies them (EMA, SWA)
    "early_stopping": -10,  # decides before checkpoints are written, so the checkpoint records the stop
    "augment": 1,  # before MixUp (mix augmented images) and before resizing
    "mixup": 2,  # after the augmentation pipeline
    "progressive": 3,  # resizes after augmentation and mixing
    "ema": 5,  # after early stopping has restored the best raw weights at FIT_END
    "swa": 6,  # like EMA; after it, so an averaged model is what the final test sees
    "best_checkpoint": 10,  # after early stopping's decision
    "loggers": 90,  # after the callbacks that add to the record or write files (monitors, doctor)
    "doctor": 100,  # reads the finished record
    "autofix": 110,  # after the doctor's callback has put the epoch's diagnosis into state.extras
    "rank_sync": 10**6,  # data-parallel: after every other callback, so that it sees their decisions
}


class Callback:
    """Base class. Override ``on_<event>`` methods; each receives the State.

    ``order`` sorts callbacks (lower first) when several handle the same event (see ``ORDER``).
    """

    order: int = 0
    # How the on_after_loss / on_after_backward handlers behave, for train.cuda_graphs, which records the
    # step once and replays it: "same" (the same device work at every step, no host decisions: captured
    # into the graph), "sampled" (they act only at steps where needs_eager_step(state) is True, and those
    # steps run eagerly), or None (unknown: the run refuses train.cuda_graphs rather than guess).
    step_work: str | None = None
    # A callback whose handlers of the step's four events (BATCH_START, AFTER_LOSS, AFTER_BACKWARD, STEP_END) act
    # only at steps where ``state.step % sample_every == 0`` (``state.step`` as at the step's BATCH_START), and
    # return at once at other steps, may say so here: the trainer then calls them at those steps only (the
    # monitors, which sample every ``monitors.every_n_steps``). Other events are always dispatched.
    sample_every: int | None = None

    def needs_eager_step(self, state: State) -> bool:
        """With step_work = "sampled": does this step need the handlers to run (then it is not replayed)?"""
        return True

    def on_event(self, event: Event, state: State) -> None:
        handler = getattr(self, f"on_{event.value}", None)
        if handler is not None:
            handler(state)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @property
    def key(self) -> str:
        """Name under which this callback's state is checkpointed."""
        return type(self).__name__


def unique_keys(callbacks: list[Callback]) -> list[str]:
    """Checkpoint names of ``callbacks``, in order: each one's ``key``, with ``#2``, ``#3`` ... after the second
    and later callbacks of one key, so two instances of one callback keep their own state."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        seen[cb.key] = seen.get(cb.key, 0) + 1
        keys.append(cb.key if seen[cb.key] == 1 else f"{cb.key}#{seen[cb.key]}")
    return keys

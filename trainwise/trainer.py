"""The training loop. Read top to bottom, it is the specification of a trainwise run.

``Trainer(config, model=None, data=None, callbacks=(), run_dir=None).fit()`` builds whatever is not
given (data from ``config.data``, the model from ``config.model``; the set-up is trainwise.build.build_run),
trains, validates every epoch,
tests at the end and returns a :class:`Run`. Events are fired as trainwise.core documents; subclass and
override ``train_step`` to change what one step does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainwise import checkpointing, integrity, profiling, report_server
from trainwise.callbacks.best_checkpoint import BestCheckpoint
from trainwise.callbacks.early_stopping import EarlyStopping
from trainwise.callbacks.monitor_base import metric_value
from trainwise.build import build_run
from trainwise.config import Config, dump_toml
from trainwise.core import STEP_EVENTS, Callback, Event, unique_keys
from trainwise.doctor import diagnose
from trainwise.data import DataSplits
from trainwise.data.loader import DeviceLoader
from trainwise.faults import point as fault_point
from trainwise.history import History
from trainwise.interrupt import TrainingInterrupted
from trainwise.losses import hard_labels, task_loss
from trainwise.metrics import MetricAccumulator
from trainwise.rundir import CONFIG, ENV, FINDINGS, PREPROCESS, SUMMARY, RunDir
from trainwise.runinfo import environment
from trainwise.runlock import RunLock
from trainwise.saved_model import describe_inputs
from trainwise.techniques.tta import flip_logits


@dataclass
class Run:
    """What ``fit`` returns: the trained model, its History and the final summary."""

    config: Config
    model: torch.nn.Module
    history: History
    summary: dict[str, Any]
    run_dir: Path | None = None
    data: DataSplits | None = field(default=None, repr=False)
    findings: list = field(default_factory=list)  # the doctor's final diagnosis (trainwise.doctor.Finding)


class Trainer:
    def __init__(
        self,
        config: Config,
        model: torch.nn.Module | None = None,
        data: DataSplits | None = None,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        run_dir: str | Path | None = None,
    ):
        build_run(self, config, model, data, callbacks, run_dir)  # trainwise/build.py: everything before the loop

    @classmethod
    def from_run(cls, run_dir: str | Path, weights: str = "final", *, model: torch.nn.Module | None = None,
                 data: DataSplits | None = None, overrides: dict[str, Any] | None = None) -> Trainer:
        """A Trainer rebuilt from a run directory's config, with its ``weights`` (final | best | last | ema) loaded.

        It writes nothing (no run directory): use it to evaluate or inspect a finished run. ``model`` and
        ``data`` are needed only for runs trained on your own module or arrays.
        """
        run = RunDir(run_dir).check()
        # the run's own weights replace any pretrained ones (model.weights): that file need not exist any more
        cfg = run.load_config().replace({"train.progress": "none", "model.weights": None, **(overrides or {})})
        trainer = cls(cfg, model=model, data=data)
        run.load_weights_into(trainer.model, weights, f"the model {cfg.model.name!r}")
        return trainer

    def fire(self, event: Event) -> None:
        table = self._table if self._table is not None else self._build_tables()
        for handler in table[event]:
            handler(self.state)

    def _build_tables(self) -> dict[Event, list]:
        """The dispatch tables, built at the first event: ``_dispatch`` (every handler) and ``_plain`` (for a step
        no sampling callback samples: without their handlers of the step's four events, which would return at once)."""
        self._dispatch, self._plain = self._dispatch_table(), self._dispatch_table(plain=True)
        self._periods = tuple(sorted({cb.sample_every for cb in self.callbacks if cb.sample_every}))
        self._table = self._dispatch
        return self._table

    def _dispatch_table(self, plain: bool = False) -> dict[Event, list]:
        """Per event, the bound handlers of the callbacks that have one, in callback order (``plain``: without
        the step events' handlers of callbacks with ``sample_every``, see trainwise.core.Callback).

        Looking handlers up once instead of at every event keeps the per-step cost of callbacks that do
        nothing at a step at zero. A callback that overrides ``on_event`` itself gets every event.
        """
        table: dict[Event, list] = {event: [] for event in Event}
        for cb in self.callbacks:
            custom = type(cb).on_event is not Callback.on_event
            for event in Event:
                if plain and cb.sample_every and event in STEP_EVENTS:
                    continue
                if custom:
                    table[event].append(lambda state, cb=cb, event=event: cb.on_event(event, state))
                elif (handler := getattr(cb, f"on_{event.value}", None)) is not None:
                    table[event].append(handler)
        return table

    def describe_loop(self, file=None) -> str:
        """Print (to ``file``, default stdout) and return which callbacks run at each event, in the order they
        run, with their ``order`` (as fastai's ``show_training_loop``). Events no callback handles show "-"."""
        table = {event: [] for event in Event}
        for cb in self.callbacks:
            custom = type(cb).on_event is not Callback.on_event
            for event in Event:
                if custom or getattr(cb, f"on_{event.value}", None) is not None:
                    table[event].append(f"{type(cb).__name__}({cb.order})")
        width = max(len(e.name) for e in Event)
        text = "\n".join(f"{event.name:<{width}}  {', '.join(names) or '-'}" for event, names in table.items())
        print(text, file=file)
        return text

    # ------------------------------------------------------------------------------------- the loop
    def fit(self) -> Run:
        try:
            if self.run_dir is None or not self.dist.is_main:
                return self._fit()
            if self.config.train.report:  # the report's plot server gets ready while the model trains
                report_server.start()
            with RunLock(self.run_dir):  # one writer per run directory
                return self._fit()
        finally:
            report_server.stop()  # one the report did not take (a failed run)
            self.stop_workers()

    def stop_workers(self) -> None:
        """End the DataLoader workers of the run's loaders now. Left to the garbage collector, which finds the
        loaders in reference cycles with the trainer, each worker would keep the collecting process waiting
        about 5 s (the DataLoader's queues are finalized first, so the workers never hear that they may stop)."""
        for loader in (getattr(self, "train_loader", None), *getattr(self, "eval_loaders", {}).values()):
            stop = getattr(loader, "stop_workers", None)
            if stop is not None:
                stop()

    def _fit(self) -> Run:
        cfg, state = self.config, self.state
        if self.run_dir is not None and self.dist.is_main:
            self._write_run_files()
            self.signals.install()
        profiling.lap_start()
        try:
            self.fire(Event.FIT_START)
            profiling.lap("run files and fit-start callbacks")
            for epoch in range(self.start_epoch, cfg.train.epochs + 1):
                state.epoch = epoch
                self.fire(Event.EPOCH_START)
                started = time.perf_counter()
                self.train_epoch(epoch, start_batch=self.start_batch if epoch == self.start_epoch else 0)
                # waits for the device, so the time is honest; data-parallel: totals over all ranks
                train = self.dist.end_train_epoch(self.model, self.train_metrics).compute_loss_acc(self.task)
                profiling.lap("training, first epoch" if epoch == self.start_epoch else "training, later epochs")
                state.record = self.end_of_epoch_record(epoch, train, time.perf_counter() - started)
                profiling.lap("validation")
                self.fire(Event.EVAL_END)
                if cfg.schedule.name == "plateau":
                    self.lr.end_of_epoch(metric_value(state.record, cfg.schedule.monitor))
                self.history.append(state.record)
                self.fire(Event.EPOCH_END)
                profiling.lap("epoch-end callbacks and history")
                if self.run_dir is not None:
                    self.save_checkpoint(epoch_done=True)
                    profiling.lap("checkpoint (last.pt)")
                if self.signals.received is not None and not state.stop:
                    self.stop_for_signal(epoch_done=True)
                if state.stop:
                    break
            state.stop_reason = state.stop_reason or f"completed {cfg.train.epochs} epochs"
            self.fire(Event.FIT_END)
            profiling.lap("fit-end callbacks")
        except BaseException as err:
            state.error = err
            self.fire(Event.EXCEPTION)
            self.dist.shutdown(self)
            raise
        finally:
            self.signals.restore()
        summary = self.final_summary()
        state.extras["final_summary"] = summary
        self.fire(Event.RUN_END)
        self.dist.shutdown(self)
        return Run(config=cfg, model=self.model, history=self.history, summary=summary, run_dir=self.run_dir, data=self.data,
                   findings=list(self.diagnosis))

    def train_epoch(self, epoch: int, start_batch: int = 0) -> None:
        state = self.state
        # train() sets every module's flag; walking the tree to see that nothing needs it costs a quarter of that
        if not all(m.training and type(m).train is torch.nn.Module.train for m in self.model.modules()):
            self.model.train()
        if start_batch == 0:
            self.train_metrics.reset()
        every = self.config.checkpoint.every_n_steps
        batches = self.train_loader.batches(epoch, start_batch, height=state.extras.get("resolution"))  # image folders decode at a phase's height
        if self._table is None:
            self._build_tables()
        full, plain, periods = self._dispatch, self._plain, self._periods
        k = periods[0] if len(periods) == 1 else 0
        try:
            for state.batch_index, (inputs, targets) in enumerate(batches, start=start_batch):
                state.inputs, state.targets = inputs, targets
                # The step's table, chosen once from the step count at its start: at a step that no sampling
                # callback samples, their handlers of the step's events are not called at all.
                if k:
                    self._table = full if state.step % k == 0 else plain
                elif periods:
                    self._table = full if any(state.step % p == 0 for p in periods) else plain
                self.fire(Event.BATCH_START)
                if self.graphed is None:
                    self.train_step()
                else:
                    self.graphed.step()  # a replayed CUDA graph, or train_step where it must run eagerly
                self.fire(Event.STEP_END)
                if every and self.run_dir is not None and state.step % every == 0 and state.batch_index + 1 < state.steps_per_epoch:
                    self.save_checkpoint(epoch_done=False)
                fault_point("step")
                if self.signals.received is not None and not state.stop:
                    self.stop_for_signal(epoch_done=False)
                if state.stop:
                    break
        finally:
            self._table = full  # events outside the steps (and a train_step called on its own) see every handler

    def forward_loss(self, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor,
                     autocast_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, loss) of a training batch: the compiled/data-parallel forward under autocast, then the task
        loss with label smoothing (soft MixUp/CutMix targets included). Callbacks reach it as ``state.forward_loss``
        (SAM's second forward). ``autocast_cache=False`` inside a CUDA-graph capture (trainwise.cuda_graphs)."""
        if self.autocast_dtype is None:  # fp32: entering a disabled autocast still costs microseconds per step
            outputs = self.forward(*inputs)
            # .float() of float32 outputs is the tensor itself; the dtype test costs less than the call
            return outputs, self.loss_fn(outputs if outputs.dtype is torch.float32 else outputs.float(), targets)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=autocast_cache):
            outputs = self.forward(*inputs)
            return outputs, self.loss_fn(outputs.float(), targets)

    def train_step(self, events: bool = True) -> None:
        """Forward, loss, backward, clip, step: one optimizer step on ``state.inputs``/``state.targets``.

        ``events=False`` leaves the callbacks out (the LR finder's and batch-size finder's probe steps)."""
        state, cfg = self.state, self.config
        state.outputs, state.loss = self.forward_loss(state.inputs, state.targets)
        if events:
            self.fire(Event.AFTER_LOSS)  # penalties (L1/L2) add to state.loss here
        scaled = self.scaler.is_enabled()  # fp16 only; the other precisions skip its calls on the hot path
        if scaled:
            self.scaler.scale(state.loss).backward()
            self.scaler.unscale_(self.optimizer)  # so clipping and monitors see true gradient sizes
        else:
            state.loss.backward()
        if events:
            self.fire(Event.AFTER_BACKWARD)
        if cfg.train.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.train.grad_clip_value)
        if cfg.train.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip_norm)
        if state.skip_step:
            state.skip_step = False
            if scaled:
                self.scaler.update()
        else:
            self.lr.set(state.step, state.lr_scale)
            if scaled:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            state.step += 1
        self.optimizer.zero_grad(set_to_none=True)
        # no torch.no_grad() here: entering it costs microseconds per step, and nothing below records a graph
        self.train_metrics.update_from_logits(state.loss, state.outputs, hard_labels(state.targets, self.task), self.task)

    @torch.no_grad()
    def evaluate(self, split: str = "val", loader: DeviceLoader | None = None) -> dict[str, Any]:
        """Loss and classification metrics of the current model on a split (no gradients, eval mode)."""
        loader = loader or self.eval_loaders[split]
        was_training = self.model.training
        self.model.eval()
        acc = MetricAccumulator(self.num_classes, self.device)
        for inputs, targets in loader.batches():
            logits = self.eval_logits(inputs)
            acc.update_from_logits(task_loss(logits, targets, self.task), logits, targets, self.task)
            fault_point("eval")
        self.model.train(was_training)
        return self.dist.all_reduce(acc).compute(self.task)

    def eval_logits(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Evaluation logits of a batch: test-time input transforms, then the model (flip TTA when configured)."""
        for transform in self.state.eval_transforms:
            inputs = transform(inputs)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            if self.config.evaluation.tta_flip:
                return flip_logits(self.forward, inputs, self.task)
            return self.forward(*inputs).float()

    def end_of_epoch_record(self, epoch: int, train: dict[str, Any], train_seconds: float) -> dict[str, Any]:
        record: dict[str, Any] = {"epoch": epoch, "step": self.state.step, "train_loss": train["loss"], "train_acc": train["acc"],
                                  "train_precision": train["precision"], "train_recall": train["recall"], "train_f1": train["f1"]}
        if "val" in self.eval_loaders:
            val = self.evaluate("val")
            record |= {f"val_{k}": val[k] for k in ("loss", "acc", "precision", "recall", "f1", "macro_f1")}
        record["lr"] = float(self.optimizer.param_groups[0]["lr"])  # what the epoch's last step trained with (a device tensor under train.cuda_graphs)
        record["time_s"] = train_seconds
        record["samples_per_s"] = self.train_metrics.count / max(train_seconds, 1e-9)
        if self.state.phase is not None:
            record["phase"] = self.state.phase
        return record

    # ------------------------------------------------------------------------------------- outputs
    def final_summary(self) -> dict[str, Any]:
        state = self.state
        summary: dict[str, Any] = {
            "epochs_run": state.epoch, "steps": state.step, "stop_reason": state.stop_reason,
            "task": self.task, "num_classes": self.num_classes, "class_names": self.data.class_names,
            "model_source": "user" if state.extras.get("user_model") else "config",
        }
        watched = [c for c in self.callbacks if isinstance(c, (EarlyStopping, BestCheckpoint))]
        if watched:
            w = watched[0].watcher
            summary |= {"monitor": w.monitor, "best_value": w.best, "best_epoch": w.best_epoch}
        if "restored_epoch" in state.extras:
            summary["restored_epoch"] = state.extras["restored_epoch"]
        if self.data.val is not None:
            summary["val_samples"] = len(self.data.val)  # how much a validation score can move by sampling alone (trainwise fix)
        if "test" in self.eval_loaders:
            profiling.lap_start()
            test = self.evaluate("test")
            profiling.lap("test evaluation")
            summary["test"] = {k: v for k, v in test.items()}
        summary["time_s"] = sum(r.get("time_s", 0.0) for r in self.history)
        summary |= state.extras.get("summary", {})  # techniques' entries, e.g. test_weights (EMA), finetune
        if self.run_dir is not None and self.dist.is_main:
            self.run.write_json(SUMMARY, summary)
            self.run.save_weights("final", self.model, {"epoch": state.epoch})
        profiling.lap("summary and final weights")
        # The final diagnosis reads the finished run, test predictions included.
        self.diagnosis = diagnose(self.history, self.config, num_classes=self.num_classes, task=self.task,
                                  predictions=summary.get("test", {}).get("confusion"), user_model=bool(state.extras.get("user_model")))
        profiling.lap("diagnosis")
        if self.run_dir is not None and self.dist.is_main:
            self.run.write_json(FINDINGS, self.diagnosis.to_dict())
            if self.config.train.report:
                from trainwise.report import render_report

                summary["report"] = str(render_report(self.run_dir, findings=list(self.diagnosis)))
                profiling.lap("report")
        return summary

    def _write_run_files(self) -> None:
        integrity.settle(self.run_dir)  # a killed write may have listed a version that never landed
        self.run.write_text(CONFIG, dump_toml(self.config))
        self.run.write_json(ENV, environment(self.device, self.config.train.seed) | self.dist.describe())
        self.run.write_json(PREPROCESS, describe_inputs(self.data, self.config.data))

    # ----------------------------------------------------------------------------------- checkpoints
    def checkpoint_state(self, epoch_done: bool) -> dict[str, Any]:
        s = self.state
        return {
            "format": 1,
            "epoch": s.epoch, "epoch_done": epoch_done, "batch_index": s.batch_index + 1, "step": s.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.graphed is None else self.graphed.optimizer_state(),
            "scheduler": self.lr.state_dict(),
            "scaler": self.scaler.state_dict(),
            "callbacks": {key: cb.state_dict() for key, cb in zip(unique_keys(self.callbacks), self.callbacks)},
            "rng": checkpointing.rng_state(),
            "train_metrics": {"loss_sum": self.train_metrics.loss_sum, "confusion": self.train_metrics.confusion, "count": self.train_metrics.count},
            "history_len": len(self.history),
            "history": list(self.history.records),  # resume rebuilds a damaged or truncated history.jsonl from it
            "stop": s.stop, "stop_reason": s.stop_reason, "phase": s.phase,
            "config": self.config.to_dict(),  # resume refuses a checkpoint of another config
        }

    def save_checkpoint(self, epoch_done: bool) -> None:
        ckpt = self.dist.add_rank_states(self.checkpoint_state(epoch_done), self.train_metrics)  # all ranks take part
        if self.dist.is_main:
            self.run.save_checkpoint(ckpt)

    def stop_for_signal(self, epoch_done: bool) -> None:
        """After SIGINT/SIGTERM: write the resumable checkpoint (an epoch's end already has one) and raise."""
        if not epoch_done:
            self.save_checkpoint(epoch_done=False)
        raise TrainingInterrupted(self.signals.received, self.state.epoch, self.state.step, self.run_dir)

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        s = self.state
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scheduler"] is not None:
            self.lr.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        for key, cb in zip(unique_keys(self.callbacks), self.callbacks):
            if key in ckpt["callbacks"]:
                cb.load_state_dict(ckpt["callbacks"][key])
        checkpointing.set_rng_state(ckpt["rng"])
        tm = ckpt["train_metrics"]
        self.train_metrics.loss_sum, self.train_metrics.confusion, self.train_metrics.count = (
            tm["loss_sum"].to(self.device), tm["confusion"].to(self.device), tm["count"])
        s.step, s.phase, s.stop, s.stop_reason = ckpt["step"], ckpt["phase"], ckpt["stop"], ckpt["stop_reason"]
        if ckpt["epoch_done"]:
            self.start_epoch, self.start_batch = ckpt["epoch"] + 1, 0
        else:
            self.start_epoch, self.start_batch = ckpt["epoch"], ckpt["batch_index"]
        if s.stop:  # the run had decided to stop: no more batches (finish the epoch's record) and no more epochs
            self.start_epoch, self.start_batch = (self.config.train.epochs + 1, 0) if ckpt["epoch_done"] else (ckpt["epoch"], s.steps_per_epoch)
        s.epoch = ckpt["epoch"]
        self.history.truncate(ckpt["history_len"])
        self.dist.restore_rank_state(self, ckpt)

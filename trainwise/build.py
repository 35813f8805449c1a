"""Building a run: everything ``Trainer.__init__`` sets up before the loop starts, in the order it happens.

Device and data-parallel set-up, the data, the model (techniques' set-up, the output check, channels_last,
torch.compile, the data-parallel wrapper), the loaders, the optimizer and the LR owner, mixed precision,
the History and the State, and the callbacks. trainwise/trainer.py then holds only the loop.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainwise import distributed, preload, profiling
from trainwise.callbacks.best_checkpoint import BestCheckpoint
from trainwise.callbacks.step_curve import StepCurve
from trainwise.callbacks.doctor import DoctorCallback
from trainwise.callbacks.early_stopping import EarlyStopping
from trainwise.callbacks.loggers import make_loggers
from trainwise.callbacks.monitors import make_monitors
from trainwise.callbacks.progress import make_progress
from trainwise.config import Config
from trainwise.core import Callback, State
from trainwise.data import DataSplits, prepare_data
from trainwise.data.loader import loader_options, make_loader
from trainwise.errors import UserError
from trainwise.history import History
from trainwise.interrupt import SignalCatcher
from trainwise.losses import loss_function
from trainwise.metrics import MetricAccumulator
from trainwise.models import build_model
from trainwise.optim import LearningRate, build_optimizer, param_groups, scaled_lr
from trainwise.rundir import HISTORY, RunDir
from trainwise.techniques import registry as techniques

if TYPE_CHECKING:
    from trainwise.trainer import Trainer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError("bad train.device", expected="auto, cpu, cuda, cuda:N or mps", received=name) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device asks for CUDA but no GPU is visible", received=name, fix="set train.device=auto or cpu")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_run(trainer: Trainer, config: Config, model: torch.nn.Module | None = None, data: DataSplits | None = None,
              callbacks: Sequence[Callback] = (), run_dir: str | Path | None = None) -> None:
    """Set up ``trainer`` for ``config`` (the attributes the loop reads: device, dist, data, model, forward,
    loaders, optimizer, lr, scaler, history, state, callbacks ...)."""
    trainer.config = config
    cfg = config
    trainer.config = config
    cfg = config
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    profiling.lap_start()
    trainer.device = resolve_device(cfg.train.device)
    given_batch = getattr(data.train, "batch_size", None) if data is not None else None
    if given_batch and given_batch != cfg.data.batch_size:  # a user's DataLoader brings its batch size; the config records it
        cfg = config = trainer.config = cfg.replace({"data.batch_size": given_batch})
    trainer.dist = distributed.setup(cfg, trainer.device)  # data-parallel when launched by torchrun / --devices
    trainer.device = trainer.dist.device
    # The optimizer below imports TorchDynamo: on a GPU, import it while CUDA's context is created.
    if preload.cuda_context_beside_dynamo_import(trainer.device):
        profiling.lap("CUDA context beside TorchDynamo import")
    profiling.initialize_device(trainer.device)
    trainer.data = data if data is not None else prepare_data(cfg.data)
    profiling.lap("data read")
    if trainer.data.val is None and (cfg.early_stopping.enabled or cfg.checkpoint.monitor.startswith("val_")
                                     or cfg.schedule.monitor.startswith("val_")):
        # Without a validation split the monitors fall back to the training metrics.
        cfg = config = cfg.replace({"checkpoint.monitor": "train_loss",
                                    "early_stopping.monitor": cfg.early_stopping.monitor.replace("val_", "train_"),
                                    "schedule.monitor": cfg.schedule.monitor.replace("val_", "train_")})
        trainer.config = cfg
    if cfg.optim.lr == "auto":
        raise UserError("optim.lr = 'auto' is resolved before a Trainer is built", received="a Trainer made directly",
                        fix="use trainwise.fit or the CLI (they run the LR finder first), or set optim.lr to a number")
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    trainer.task, trainer.num_classes = trainer.data.task, trainer.data.num_classes
    out_dim = 1 if trainer.task == "binary" else trainer.num_classes
    trainer.model = (model if model is not None else build_model(cfg.model, trainer.data.input_shape, trainer.data.feature_dim, out_dim)).to(trainer.device)
    techniques.setup_model(trainer.model, cfg)  # init.scheme (default: leave the model as built)
    check_model_output(trainer.model, trainer.data, trainer.device, out_dim)
    if cfg.train.channels_last:
        trainer.model = trainer.model.to(memory_format=torch.channels_last)
    # The compiled wrapper shares parameters with trainer.model; state dicts and hooks use trainer.model.
    trainer.forward = torch.compile(trainer.model, mode=cfg.train.compile_mode) if cfg.train.compile else trainer.model
    trainer.forward = trainer.dist.wrap_model(trainer.model, trainer.forward, cfg)
    profiling.lap("model build")

    options = loader_options(cfg.data.num_workers, trainer.device, pin_memory=cfg.data.pin_memory,
                             persistent_workers=cfg.data.persistent_workers, prefetch_factor=cfg.data.prefetch_factor)
    trainer.train_loader = make_loader(trainer.data.train, trainer.dist.global_batch, trainer.device, shuffle=True, seed=cfg.train.seed,
                                    drop_last=cfg.data.drop_last, mode=cfg.data.loader, options=options)
    trainer.train_loader.shard(trainer.dist.rank, trainer.dist.world_size)
    if len(trainer.train_loader) == 0:
        raise UserError("no training batches", expected=f"at least {cfg.data.batch_size} training samples with data.drop_last=true",
                        received=f"{len(trainer.data.train)} samples", fix="set data.drop_last=false or a smaller data.batch_size")
    trainer.eval_loaders = {
        split: make_loader(d, cfg.data.eval_batch_size, trainer.device, shuffle=False, mode=cfg.data.loader, options=options)
        for split, d in (("val", trainer.data.val), ("test", trainer.data.test)) if d is not None
    }
    trainer.eval_loaders = trainer.dist.shard_eval(trainer.eval_loaders)
    profiling.lap("data to the device (loaders)")
    lr = scaled_lr(cfg.optim, trainer.dist.global_batch)
    groups = param_groups(trainer.model, cfg.optim.weight_decay, cfg.optim.no_decay_bias_norm, techniques.lr_multipliers(trainer.model, cfg))
    trainer.optimizer = build_optimizer(groups, cfg.optim, lr)
    steps_per_epoch = len(trainer.train_loader)
    trainer.lr = LearningRate(trainer.optimizer, cfg.schedule, steps_per_epoch, cfg.train.epochs)  # the one owner of the LR
    trainer.loss_fn = loss_function(trainer.task, cfg.regularization.label_smoothing)  # (logits, targets) -> the training loss
    trainer.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.train.precision]
    trainer.scaler = torch.amp.GradScaler(trainer.device.type, enabled=cfg.train.precision == "fp16")

    trainer.run_dir = Path(run_dir) if run_dir is not None else None
    trainer.run = RunDir(trainer.run_dir) if trainer.run_dir is not None else None
    writes = trainer.run is not None and trainer.dist.is_main  # the History's writes carry their checksums (manifest.json)
    trainer.history = History(path=trainer.run.history_file if writes else None, before_rename=trainer.run.recorder(HISTORY) if writes else None)
    trainer.state = State(config=cfg, model=trainer.model, optimizer=trainer.optimizer, scheduler=trainer.lr, history=trainer.history,
                          device=trainer.device, task=trainer.task, num_classes=trainer.num_classes,
                          run_dir=trainer.run_dir if trainer.dist.is_main else None, steps_per_epoch=steps_per_epoch)
    trainer.state.evaluate, trainer.state.eval_transforms = trainer.evaluate, techniques.eval_transforms(cfg)
    # A model passed in is not what model.* builds: the doctor gives no model.* fix for it.
    trainer.state.extras["user_model"] = model is not None
    trainer.state.forward_loss, trainer.state.train_loader = trainer.forward_loss, trainer.train_loader
    trainer.callbacks = sorted(default_callbacks(trainer) + list(callbacks), key=lambda c: c.order)
    trainer._table = None  # the dispatch tables are built at the first event (see Trainer.fire)
    trainer.train_metrics = MetricAccumulator(trainer.num_classes, trainer.device)
    trainer.start_epoch, trainer.start_batch = 1, 0  # changed by load_checkpoint
    trainer.signals = SignalCatcher()  # catches SIGINT/SIGTERM while fit runs with a run directory
    trainer.graphed = graphed_step(trainer) if cfg.train.cuda_graphs else None
    profiling.lap("optimizer, schedule, callbacks")


def default_callbacks(trainer: Trainer) -> list[Callback]:
    """The callbacks every run of this config has, before the user's: early stopping, checkpoints, progress,
    monitors, the live doctor, loggers, data-parallel sync and the techniques the config turns on."""
    cfg = trainer.config
    cbs: list[Callback] = []
    if cfg.early_stopping.enabled:
        cbs.append(EarlyStopping(cfg.early_stopping))
    if trainer.run_dir is not None:
        cbs.append(BestCheckpoint(cfg.checkpoint))
        cbs.append(StepCurve())  # steps.jsonl: the report's per-step loss and LR
    progress = make_progress(cfg.train.progress) if trainer.dist.is_main else None
    if progress is not None:
        cbs.append(progress)
    cbs += make_monitors(cfg)
    if cfg.doctor.live:
        cbs.append(DoctorCallback(emit=progress.write if progress is not None else (lambda line: None)))
    cbs += make_loggers(cfg.logging, trainer.run_dir if trainer.dist.is_main else None)  # TensorBoard / MLflow when [logging] enables them
    cbs += trainer.dist.callbacks(trainer)
    return cbs + techniques.callbacks(cfg)  # each technique the config turns on


def graphed_step(trainer: Trainer):
    from trainwise.cuda_graphs import GraphedStep, unsupported_reason

    reason = unsupported_reason(trainer)
    if reason is not None:
        raise UserError(reason, received="train.cuda_graphs = true", fix="change what it names, or set train.cuda_graphs=false")
    return GraphedStep(trainer)


def check_model_output(model: torch.nn.Module, data: DataSplits, device: torch.device, out_dim: int) -> None:
    """One forward of two training samples: a model that cannot take the data, or gives the wrong number of
    logits, is a one-line user error before anything trains."""
    sample = tuple(t.to(device) for t in data.train.head(2)[0])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*sample)
    except Exception as err:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in sample)
        raise UserError("the model cannot take the data's inputs", expected=f"a forward(*inputs) accepting samples shaped {shapes}",
                        received=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
                        fix="match the model's input layer to the data (or choose another model.name)") from None
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] != out_dim:
        what = "1 logit (binary task)" if out_dim == 1 else f"{out_dim} logits (one per class)"
        raise UserError("the model's output does not match the classes", expected=f"{what} per sample",
                        received=f"output shaped {tuple(out.shape)}", fix=f"make the last layer output {out_dim}")

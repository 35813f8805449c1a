"""The run configuration: typed, frozen, validated before any data is loaded.

A config is TOML (or YAML) with one table per concern::

    [data]      name = "digits", batch_size = 64 ...
    [model]     name = "mlp", hidden = [128, 64] ...
    [optim]     name = "adamw", lr = 1e-3 ...
    [schedule]  name = "cosine", warmup_epochs = 1 ...
    [train]     epochs = 20, seed = 0, precision = "fp32" ...
    [early_stopping] / [checkpoint] / [regularization] / [monitors] / [doctor]

Every field has one default, here. ``docs/config.md`` is generated from these classes
(``trainwise config-reference``), so the reference cannot drift from the code.
"""

from __future__ import annotations

import datetime
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainwise.errors import UserError
from trainwise.optimizers import OPTIMIZERS


# NumPy, torch and scikit-learn all accept seeds in 0 .. 2**32 - 1; anything else fails deep inside them.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class _Section(BaseModel):
    # Frozen so that a running Trainer can hand its config to callbacks without fear of mutation;
    # extra="forbid" so that a typo ("learning_rate") is an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # lr = inf is a typo, not a setting


class DataConfig(_Section):
    """Which dataset, how it is split and batched."""

    name: str = Field("digits", description="digits | breast_cancer | mnist1d | fashion_mnist | arrays | csv | folder | npy")
    path: str | None = Field(None, description="file or directory: NPZ/CSV for arrays/csv, IDX directory for fashion_mnist, "
                             "image folder for folder, .npy file of inputs for npy")
    target: str = Field("y", description="label key in an NPZ file, or label column name in a CSV file")
    features: str | None = Field(None, description="NPZ key of an extra feature vector fed beside the input (fusion models)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the training data held out for validation")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out for test when the dataset has no test split")
    split_seed: Seed = Field(0, description="seed of the train/val/test split (independent of train.seed), 0 .. 2**32-1")
    train_subset: int | None = Field(None, gt=0, description="keep only this many training samples (stratified)")
    classes: list[int] | None = Field(None, description="keep only these label values, numbered 0..k-1 in this order (e.g. [0, 7]; for fine-tuning on a subset)")
    image_size: int | tuple[int, int] | None = Field(None, description="folder: decode images at this size (H = W, or [H, W]); None: the first image's")
    channels: Literal[1, 3] | None = Field(None, description="folder: 1 (grayscale) or 3 (RGB); None: from the first image")
    skip_corrupt: bool = Field(False, description="folder: leave out files that cannot be decoded (counted per epoch) instead of stopping")
    decoder: Literal["auto", "pillow", "opencv"] = Field(
        "auto", description="folder: who decodes PNG files; auto: OpenCV when installed (about twice as fast, the same pixels), else Pillow")
    batch_size: int = Field(64, gt=0, description="training batch size (global)")
    eval_batch_size: int = Field(1024, gt=0, description="batch size for validation and test")
    normalize: bool = Field(True, description="standardize inputs with statistics of the training split only")
    cache: bool = Field(True, description="keep the prepared splits of a built-in dataset in $TRAINWISE_CACHE (default ~/.cache/trainwise) for the next run")
    loader: Literal["auto", "device", "dataloader"] = Field(
        "auto", description="device: whole dataset on the device, batches by indexing; dataloader: torch DataLoader"
    )
    num_workers: int = Field(2, ge=0, description="DataLoader workers (loader = dataloader, Datasets, image folders, .npy files)")
    pin_memory: bool = Field(True, description="DataLoader batches in pinned host memory (CUDA only: faster, asynchronous copies)")
    persistent_workers: bool = Field(True, description="keep DataLoader workers alive between epochs (num_workers > 0)")
    prefetch_factor: int | None = Field(None, gt=0, description="batches each DataLoader worker loads ahead (None: torch's default, 2)")
    drop_last: bool = Field(False, description="drop the last incomplete training batch")
    per_device_batch: bool = Field(False, description="data-parallel runs: batch_size is per process (global batch = batch_size x processes)")

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, v):
        if v is not None and min((v, v) if isinstance(v, int) else v) <= 0:
            raise ValueError("image sizes > 0")
        return v

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) < 2 or len(set(v)) != len(v)):
            raise ValueError("at least two distinct class ids")
        return v


class ModelConfig(_Section):
    """Which network. ``name`` is a registered builder or ``package.module:factory``."""

    name: str = Field("mlp", description="mlp | cnn | convnet | resnet | fusion | timm:<arch> (timm installed) | package.module:factory")
    hidden: list[int] = Field([128, 64], description="mlp: hidden layer sizes")
    activation: str = Field("relu", description="relu | leaky_relu | gelu | silu | tanh | sigmoid | elu | selu")
    dropout: float | list[float] = Field(0.0, description="dropout rate, one for all layers or one per layer")
    batch_norm: bool = Field(False, description="batch norm after each hidden/conv layer")
    channels: list[int] = Field([32, 64], description="cnn: channels per conv block; resnet: channels per stage")
    blocks_per_stage: int = Field(1, gt=0, description="resnet: residual blocks per stage")
    drop_path: float = Field(0.0, ge=0.0, lt=1.0, description="resnet: stochastic depth rate (linearly increasing)")
    feature_hidden: list[int] = Field([32], description="fusion: hidden sizes of the branch for the extra feature vector")
    fusion_hidden: list[int] = Field([64], description="fusion: sizes of the layers after joining the two branches (the first is the fusion layer); [] joins straight into the classifier")
    fusion_dropout: float | list[float] = Field(0.0, description="fusion: dropout after each fusion_hidden layer (one rate or one per layer; with fusion_hidden = [] one rate before the classifier)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for a package.module:factory or timm.create_model")
    weights: str | None = Field(None, description="local pretrained weights (.safetensors or a .pt/.pth state dict) loaded into the model where names and shapes match; nothing downloads")

    @field_validator("dropout", "fusion_dropout")
    @classmethod
    def _dropout_range(cls, v: float | list[float]) -> float | list[float]:
        for rate in v if isinstance(v, list) else [v]:
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"dropout rates must be in [0, 1), got {rate}")
        return v

    @field_validator("kwargs")
    @classmethod
    def _toml_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        # The run directory saves the config as TOML (config.toml, read again by resume): no null, NaN or infinity.
        if not _toml_value(v):
            raise ValueError("values a TOML file can hold: strings, finite numbers, booleans, dates, lists and tables (no null)")
        return v

    @field_validator("hidden", "channels", "feature_hidden")
    @classmethod
    def _positive_sizes(cls, v: list[int]) -> list[int]:
        if any(size <= 0 for size in v):
            raise ValueError("layer sizes > 0")
        return v


def _toml_value(x: Any) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _toml_value(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_toml_value(v) for v in x)
    if isinstance(x, float):
        return math.isfinite(x)
    return isinstance(x, (str, int, datetime.date, datetime.time))  # bool is an int; datetime a date


class OptimConfig(_Section):
    """Optimizer and its hyperparameters (torch.optim)."""

    name: Literal[tuple(OPTIMIZERS)] = Field("adamw", description="torch.optim optimizer (trainwise/optimizers.py: builder and usual LR range of each)")
    lr: float | Literal["auto"] = Field(1e-3, description='learning rate (before LR scaling); "auto": run lr-find first and use its suggestion')
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd and rmsprop momentum")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum")
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="adam/adamw betas, each in [0, 1)")
    eps: float = Field(1e-8, gt=0.0)
    alpha: float = Field(0.99, gt=0.0, lt=1.0, description="rmsprop smoothing constant")
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled for adamw, L2-in-gradient for the others")
    no_decay_bias_norm: bool = Field(True, description="exempt biases and normalization weights from weight decay")
    scale_lr: Literal["none", "linear", "sqrt"] = Field("none", description="LR scaling rule for large batches")
    base_batch_size: int = Field(64, gt=0, description="batch size at which lr was tuned (for scale_lr)")
    fused: bool | None = Field(None, description="fused/foreach kernels (None: torch's default)")

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, v: float | str) -> float | str:
        if v != "auto" and not v > 0:
            raise ValueError('lr must be greater than 0 (or "auto")')
        return v

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimConfig:
        if self.name == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0 (set optim.momentum=0.9)")
        return self


class ScheduleConfig(_Section):
    """Learning-rate schedule, applied per optimizer step (plateau: per epoch)."""

    name: Literal["none", "step", "exponential", "cosine", "onecycle", "plateau", "linear"] = "none"
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warm-up in front of every schedule but onecycle (plateau, none: warm-up, then the constant or plateau-reduced lr)")
    warmup_start_factor: float = Field(0.01, gt=0.0, le=1.0, description="warm-up starts at lr * this")
    step_size: int = Field(10, gt=0, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step/exponential: decay factor (per step_size / per epoch)")
    min_lr_factor: float = Field(0.0, ge=0.0, le=1.0, description="cosine/linear: final lr = lr * this")
    max_lr: float | None = Field(None, gt=0.0, description="onecycle: peak lr (default: optim.lr)")
    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="onecycle: share of steps spent increasing")
    div_factor: float = Field(25.0, gt=0.0, description="onecycle: initial lr = max_lr / div_factor")
    final_div_factor: float = Field(1e4, gt=0.0, description="onecycle: final lr = initial lr / final_div_factor")
    monitor: str = Field("val_loss", description="plateau: metric watched")
    patience: int = Field(3, ge=0, description="plateau: epochs without improvement before reducing")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="plateau: lr multiplier on reduction")

    @model_validator(mode="after")
    def _onecycle_has_its_own_warmup(self) -> ScheduleConfig:
        if self.name == "onecycle" and self.warmup_epochs > 0:
            raise ValueError("onecycle rises by itself and takes no warmup_epochs (set schedule.pct_start for the length of its rise, "
                             "or schedule.warmup_epochs=0)")
        return self


class RegularizationConfig(_Section):
    """Loss-level regularization."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="multi-class and binary targets")
    l1: float = Field(0.0, ge=0.0, description="L1 penalty coefficient added to the loss (weights, not biases)")
    l2: float = Field(0.0, ge=0.0, description="explicit L2 penalty coefficient added to the loss")


class EarlyStoppingConfig(_Section):
    enabled: bool = False
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=0, description="stop after this many epochs in a row without improvement (Keras/Lightning)")
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = Field(True, description="load the best epoch's weights when training stops")


class CheckpointConfig(_Section):
    monitor: str = Field("val_loss", description="metric that decides checkpoints/best")
    mode: Literal["auto", "min", "max"] = "auto"
    every_n_steps: int | None = Field(None, gt=0, description="also write a resumable checkpoint mid-epoch")


class TrainConfig(_Section):
    epochs: int = Field(20, gt=0)
    seed: Seed = Field(0, description="seed for weights, data order and dropout, 0 .. 2**32-1")
    deterministic: bool = Field(False, description="torch deterministic algorithms (bit-exact reruns)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast precision")
    grad_clip_norm: float | None = Field(None, gt=0.0, description="clip the total gradient norm to this")
    grad_clip_value: float | None = Field(None, gt=0.0, description="clip each gradient entry to [-v, v]")
    progress: Literal["auto", "bar", "log", "none"] = Field("auto", description="bar on a terminal, log lines otherwise")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (None: torch's default)")
    report: bool = Field(True, description="write report.html into the run directory at the end")
    channels_last: bool = Field(False, description="NHWC memory format for conv nets (faster with bf16 on GPUs)")
    compile: bool = Field(False, description="torch.compile the model (pays off on GPUs for longer runs; use data.drop_last=true so batch shapes stay fixed)")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode (reduce-overhead uses CUDA graphs)")
    cuda_graphs: bool = Field(False, description="replay the training step as a CUDA graph (no compile; needs a fused optimizer, fp32/bf16, one GPU; see docs/benchmarks.md)")
    sync_batchnorm: bool = Field(False, description="data-parallel runs on GPUs: batch norm statistics over the global batch (SyncBatchNorm)")
    dist_timeout_s: float = Field(600.0, gt=0.0, description="data-parallel runs: seconds a process waits for the others before it stops with an error")


class MonitorsConfig(_Section):
    """Training-health monitors (callbacks). Values land in the History under the keys documented in docs/run-directory.md."""

    enabled: bool = Field(True, description="master switch for the monitors below")
    every_n_steps: int = Field(50, gt=0, description="sample gradients/updates/activations every k optimizer steps")
    grad_norms: bool = Field(True, description="total and per-layer gradient norms (before clipping)")
    update_ratios: bool = Field(True, description="per-layer ||delta w|| / ||w||")
    activations: bool = Field(True, description="dead ReLU and saturated sigmoid/tanh fractions via forward hooks")
    nan_policy: Literal["stop", "skip", "rollback"] = Field("stop", description="what to do on a NaN/Inf loss or gradient")
    nan_lr_factor: float = Field(0.5, gt=0.0, le=1.0, description="rollback: multiply the lr by this after a rollback")
    nan_max_rollbacks: int = Field(3, ge=0, description="rollback: give up after this many")


class DoctorConfig(_Section):
    """Live diagnosis during training."""

    live: bool = Field(True, description="diagnose at every epoch end and print each new finding once")
    stop_on_error: bool = Field(False, description="stop training on an error-level finding or a missed expectation")
    autofix: bool = Field(False, description="on an error-level finding, apply its fix: roll back and continue (LR, clipping) or restart (model, init, data); see docs/autofix.md")
    max_repairs: int = Field(3, ge=0, description="autofix: repairs at most, per run")
    expect: list[str] = Field(
        default_factory=list, description='expectations such as "val_acc >= 0.85 at epoch 1", "val_acc does not decrease at '
        'epoch 2", "train/val accuracy gap < 5 points"; a miss is reported (and stops training with stop_on_error)'
    )

    @field_validator("expect")
    @classmethod
    def _readable_expectations(cls, v: list[str]) -> list[str]:
        # Rejected here, before any data is loaded, rather than at the first epoch's check.
        from trainwise.doctor.expectations import parse_expectation

        for text in v:
            try:
                parse_expectation(text)
            except UserError as err:
                raise ValueError(str(err).rstrip(".")) from None
        return v


class AugmentConfig(_Section):
    """Batch augmentation on the device (trainwise.techniques.augment); each entry is {op = NAME, p = P, ...params}."""

    train: list[dict[str, Any]] = Field(
        default_factory=list, description="ops applied to training batches in order: hflip, translate, rotate, brightness, "
        "contrast, gaussian_blur, motion_blur, erase, random_resized_crop, hsv, one_of, normalize; e.g. [{op = 'hflip', p = 0.5}, {op = 'translate', pad = 2}]")
    test: list[dict[str, Any]] = Field(
        default_factory=list, description="ops applied to validation/test batches (a fixed seed per evaluation), e.g. "
        "corruptions to measure robustness")
    test_seed: Seed = Field(0, description="seed of the test pipeline's random draws")

    @field_validator("train", "test")
    @classmethod
    def _known_ops(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from trainwise.techniques.augment import check_op_spec

        for spec in v:
            try:
                check_op_spec(spec)
            except UserError as err:
                raise ValueError(f"augmentation ops as docs/techniques.md lists them ({str(err).rstrip('.')})") from None
        return v


class MixupConfig(_Section):
    """MixUp / CutMix on training batches (soft targets; accuracy against the dominant label)."""

    mixup_alpha: float = Field(0.0, ge=0.0, description="MixUp: lam ~ Beta(alpha, alpha); 0 turns MixUp off")
    cutmix_alpha: float = Field(0.0, ge=0.0, description="CutMix: lam ~ Beta(alpha, alpha); 0 turns CutMix off")
    switch_prob: float = Field(0.5, ge=0.0, le=1.0, description="with both on: probability of CutMix instead of MixUp for a batch")
    prob: float = Field(1.0, ge=0.0, le=1.0, description="probability that a batch is mixed at all")


class EmaConfig(_Section):
    """Exponential moving average (Polyak) of the weights, evaluated beside the raw weights."""

    enabled: bool = Field(False, description="keep an EMA of the weights; History gets val_loss_ema, val_acc_ema, val_macro_f1_ema")
    decay: float = Field(0.999, gt=0.0, lt=1.0, description="ema = decay * ema + (1 - decay) * weights after each step")
    warmup: bool = Field(True, description="use min(decay, (1 + t) / (10 + t)) after t updates")
    monitor: str = Field("val_acc", description="validation metric that decides whether the EMA or the raw weights are tested")


class SwaConfig(_Section):
    """Stochastic weight averaging: the final weights are the mean of the epochs' weights from start_epoch on."""

    enabled: bool = Field(False, description="average the weights at the end of each epoch from start_epoch; the final test uses the average")
    start_epoch: int = Field(1, gt=0, description="first epoch whose end-of-epoch weights join the average")
    update_bn: bool = Field(True, description="recompute batch-norm statistics for the averaged weights (one pass over the training data)")


class SamConfig(_Section):
    """Sharpness-aware minimization: each step uses the gradient at the worst weights within rho of the current ones."""

    rho: float = Field(0.0, ge=0.0, description="radius of the neighbourhood (0: off; 0.05 is the paper's usual value); two forward/backward passes per step")


class InitConfig(_Section):
    """Weight initialization by layer type (applied to any model when scheme is not default)."""

    scheme: Literal["default", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "zeros"] = Field(
        "default", description="linear/conv weights; biases are set to zero")
    nonlinearity: str = Field("auto", description="He gain: auto (model.activation) | relu | leaky_relu | tanh | sigmoid | selu | linear")
    mode: Literal["fan_in", "fan_out"] = Field("fan_in", description="He: preserve the forward (fan_in) or backward (fan_out) variance")


class FinetuneConfig(_Section):
    """Fine-tuning: pretrained weights, frozen parameters, per-group learning rates."""

    init_from: str | None = Field(None, description="run directory (or .safetensors file) to load weights from at the start; the head and tensors whose shape differs are skipped")
    weights: Literal["final", "best", "last", "ema", "swa"] = Field("final", description="which weights of a run directory: final | best | last | ema | swa")
    freeze: list[str] = Field(default_factory=list, description="parameter name patterns to freeze, e.g. ['hidden1.*'], ['stage1.*', 'stem.*']; ['*'] = all but the head")
    unfreeze_epoch: int | None = Field(None, gt=0, description="epoch from which the frozen parameters train too (None: never)")
    head: list[str] = Field(default_factory=list, description="patterns naming the head (default: the last layer)")
    head_lr_mult: float = Field(1.0, gt=0.0, description="learning-rate multiplier of the head")
    layer_decay: float = Field(1.0, gt=0.0, le=1.0, description="layer k below the head learns at lr * layer_decay**k")
    lr_mult: dict[str, float] = Field(default_factory=dict, description="pattern -> learning-rate multiplier (overrides the two above)")
    freeze_norm_stats: bool = Field(True, description="keep batch-norm running statistics of frozen layers fixed")
    reset_head: bool = Field(True, description="do not load the head from init_from (new classes); false: load it where shapes match")


class PhaseConfig(_Section):
    epoch: int = Field(gt=0, description="first epoch of the phase")
    resolution: int | None = Field(None, gt=0, description="image height in pixels (None: as loaded)")
    augment: bool = Field(True, description="training augmentation (pipeline, MixUp/CutMix) in this phase")


class ProgressiveConfig(_Section):
    """Progressive resizing: phases of (resolution, augmentation), e.g. a final FixRes phase without augmentation."""

    phases: list[PhaseConfig] = Field(default_factory=list, description="[[progressive.phases]] tables: epoch, resolution, augment")
    eval_resolution: Literal["full", "phase"] = Field("full", description="evaluate at the loaded resolution or at the current phase's")


class EvaluationConfig(_Section):
    """How validation and test predictions are made."""

    tta_flip: bool = Field(False, description="average the probabilities of each image and its mirror image")


class LoggingConfig(_Section):
    """Experiment loggers (optional packages: tensorboard, mlflow), off unless enabled here."""

    tensorboard: bool = Field(False, description="write TensorBoard event files (pip install tensorboard)")
    tensorboard_dir: str | None = Field(None, description="event file directory (default: <run dir>/tensorboard)")
    mlflow: bool = Field(False, description="log params, epoch metrics and artifacts to MLflow (pip install mlflow)")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's own default)")
    mlflow_experiment: str = Field("trainwise", description="MLflow experiment name (created when missing)")
    every_n_steps: int = Field(50, gt=0, description="log the step loss and lr every k optimizer steps (each read waits for the device)")


class Config(_Section):
    """The whole run configuration."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    regularization: RegularizationConfig = RegularizationConfig()
    train: TrainConfig = TrainConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    monitors: MonitorsConfig = MonitorsConfig()
    doctor: DoctorConfig = DoctorConfig()
    augment: AugmentConfig = AugmentConfig()
    mixup: MixupConfig = MixupConfig()
    ema: EmaConfig = EmaConfig()
    swa: SwaConfig = SwaConfig()
    sam: SamConfig = SamConfig()
    init: InitConfig = InitConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    progressive: ProgressiveConfig = ProgressiveConfig()
    evaluation: EvaluationConfig = EvaluationConfig()


    logging: LoggingConfig = LoggingConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def replace(self, overrides: dict[str, Any]) -> Config:
        """A new config with dotted-key overrides applied (validated)."""
        return build_config(merge_overrides(self.to_dict(), overrides), overridden=tuple(overrides))


# --------------------------------------------------------------------------- loading

def _format_validation_error(err: ValidationError, source: str, overridden: tuple[str, ...] = ()) -> UserError:
    """Pydantic's multi-line report -> one line: the first problem, what was expected, how to fix.

    A problem in a key that ``--set`` gave (or in a table below one) is attributed to that ``--set``.
    """
    first = err.errors()[0]
    key = ".".join(str(p) for p in _field_loc(first["loc"]))
    given = next((k for k in overridden if key == k or key.startswith(k + ".")), None)
    if given is not None:
        source = f"--set {given}"
    kind = first["type"]
    received = first.get("input")
    if kind == "extra_forbidden":
        section_path = first["loc"][:-1]
        valid = _valid_keys(section_path)
        return UserError(
            f"{source}: unknown key {key!r}",
            expected=f"one of {', '.join(valid)}",
            fix=f"remove or rename {key!r} (see docs/config.md)",
        )
    msg = first["msg"].removeprefix("Value error, ") or kind
    if isinstance(received, dict) and kind == "value_error":  # a check across a table's keys: name the table and what it held
        inside = [k for k in overridden if k.startswith(key + ".")]  # the --set keys within the table
        if inside and given is None:
            source = f"{source} with --set {', '.join(inside)}"
        held = ", ".join(f"{k}={v!r}" for k, v in received.items())
        return UserError(f"{source}: the keys of [{key}] do not fit together", expected=msg[0].lower() + msg[1:],
                         received=held if len(held) <= 200 else held[:197] + "...",
                         fix=f"change one of them, in the config file or with --set {key}.KEY=VALUE")
    whole = key.rsplit(".", 1)[0] if key.rsplit(".", 1)[-1].isdigit() else key  # optim.betas.0: set optim.betas
    return UserError(
        f"{source}: invalid value for {key!r}",
        expected=msg[0].lower() + msg[1:],
        received=repr(received) if not isinstance(received, dict) else "a table",
        fix=f"pass a valid value: --set {whole}=VALUE" if given else f"set {whole} to a valid value in the config file or with --set {whole}=VALUE",
    )


def _field_loc(loc: tuple) -> tuple:
    """The loc without pydantic's union-member tags ('optim.lr.float' -> 'optim.lr'); list indices stay."""
    model: type[BaseModel] | None = Config
    kept = []
    for part in loc:
        if model is None:
            if isinstance(part, int):
                kept.append(part)
            continue
        kept.append(part)
        annotation = getattr(model.model_fields.get(str(part)), "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return tuple(kept)


def _valid_keys(section_path: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in section_path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return sorted(model.model_fields)


def build_config(raw: dict[str, Any], source: str = "config", overridden: tuple[str, ...] = ()) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise _format_validation_error(err, source, overridden) from None


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b=value`` -> ("a.b", value); the value is read as TOML (numbers, bools, lists), else a string."""
    if "=" not in item:
        raise UserError("bad --set override", expected="key.sub=value", received=item, fix="write it as --set optim.lr=0.01")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = text
    return key, value


def merge_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = _deep_copy(raw)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = merged
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"cannot set {dotted!r}", expected=f"{part!r} to be a table", received=child)
            node = child
        node[parts[-1]] = value
    return merged


def flatten_dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``: the dotted keys of ``--set`` (empty tables stay as values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten_dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} not found", fix="pass the path of a .toml or .yaml file, e.g. configs/digits.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config file {path}", expected="a readable UTF-8 text file", received=f"{type(err).__name__}: {err}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except Exception as err:  # both parsers raise their own types; the message is what matters
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: malformed config", expected="valid TOML/YAML", received=detail, fix="correct the syntax at the place named") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: malformed config", expected="a table of sections", received=type(raw).__name__)
    return raw


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None) -> Config:
    """Read a config file (or the defaults) and apply ``--set``-style overrides."""
    raw = read_config_file(path) if path is not None else {}
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    raw = merge_overrides(raw, overrides or {})
    return build_config(raw, source=str(path) if path else "config", overridden=tuple(overrides or {}))


def dump_toml(config: Config) -> str:
    import tomli_w

    return tomli_w.dumps(config.to_dict())

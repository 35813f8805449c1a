"""The known hyperparameters of a foreign run (``diagnose --config FILE``), mapped onto trainwise's keys.

FILE is TOML, YAML or JSON. It may use trainwise's own sections (``[optim] lr = 3e-4``) or the names
other frameworks use (``optimizer = "AdamW"``, ``learning_rate``, ``lr_scheduler_type = "cosine"``,
``per_device_train_batch_size``, ``label_smoothing``, ``mixup``, ``num_train_epochs`` ...), flat or nested
one level (``optimizer: {name: adam, lr: 0.001}``). ``classes``/``num_classes``/``num_labels`` and
``task`` are read too. Only what the file states goes into the config the rules see: trainwise's
defaults are not filled in, because a foreign run's unknown settings are unknown, not trainwise's.
Names with no trainwise meaning are listed in the assumptions and otherwise ignored.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from trainwise.errors import UserError

TASKS = ("multiclass", "binary", "regression")


def sections() -> set[str]:
    """trainwise's config sections (data, model, optim, ...)."""
    from trainwise.config import Config

    return set(Config.model_fields)

# foreign name -> trainwise dotted key
KEYS = {
    "optimizer": "optim.name", "optim": "optim.name", "optimizer_name": "optim.name", "optimizer_type": "optim.name",
    "lr": "optim.lr", "learning_rate": "optim.lr", "base_lr": "optim.lr", "init_lr": "optim.lr",
    "max_lr": "schedule.max_lr", "peak_lr": "schedule.max_lr",
    "momentum": "optim.momentum", "weight_decay": "optim.weight_decay", "wd": "optim.weight_decay",
    "schedule": "schedule.name", "scheduler": "schedule.name", "lr_scheduler": "schedule.name",
    "lr_scheduler_type": "schedule.name", "lr_schedule": "schedule.name",
    "warmup_epochs": "schedule.warmup_epochs",
    "batch_size": "data.batch_size", "per_device_train_batch_size": "data.batch_size", "train_batch_size": "data.batch_size",
    "label_smoothing": "regularization.label_smoothing", "label_smoothing_factor": "regularization.label_smoothing",
    "mixup": "mixup.mixup_alpha", "mixup_alpha": "mixup.mixup_alpha", "cutmix": "mixup.cutmix_alpha",
    "cutmix_alpha": "mixup.cutmix_alpha",
    "dropout": "model.dropout", "hidden_dropout_prob": "model.dropout",
    "epochs": "train.epochs", "num_epochs": "train.epochs", "num_train_epochs": "train.epochs", "max_epochs": "train.epochs",
    "early_stopping": "early_stopping.enabled", "patience": "early_stopping.patience",
    "grad_clip": "train.grad_clip_norm", "grad_clip_norm": "train.grad_clip_norm", "max_grad_norm": "train.grad_clip_norm",
    "gradient_clip_val": "train.grad_clip_norm", "clip_grad_norm": "train.grad_clip_norm",
    "precision": "train.precision",
}
OPTIMIZERS = {"adam": "adam", "adamw": "adamw", "adamw_torch": "adamw", "adamw_hf": "adamw", "sgd": "sgd",
              "rmsprop": "rmsprop", "adagrad": "adagrad"}
SCHEDULES = {
    "none": "none", "constant": "none", "constant_lr": "none", "fixed": "none",
    "cosine": "cosine", "cosine_annealing": "cosine", "cosineannealinglr": "cosine", "cosine_with_restarts": "cosine",
    "onecycle": "onecycle", "one_cycle": "onecycle", "onecyclelr": "onecycle", "fit_one_cycle": "onecycle",
    "step": "step", "steplr": "step", "multistep": "step", "multisteplr": "step",
    "exponential": "exponential", "exponentiallr": "exponential",
    "plateau": "plateau", "reducelronplateau": "plateau", "reduce_on_plateau": "plateau",
    "linear": "linear", "linear_with_warmup": "linear",
}
PRECISIONS = {"fp32": "fp32", "32": "fp32", "float32": "fp32", "bf16": "bf16", "bf16-mixed": "bf16", "bfloat16": "bf16",
              "fp16": "fp16", "16": "fp16", "16-mixed": "fp16", "float16": "fp16"}


def load_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} not found", expected="a TOML, YAML or JSON file with the run's hyperparameters",
                        fix="pass the path of an existing file, e.g. --config run.yaml")
    text = path.read_text(errors="replace")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise UserError(f"config file {str(path)!r} has an unknown suffix", expected=".toml, .yaml, .yml or .json",
                            received=path.suffix or "(none)", fix="rename the file to say its format")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as err:
        raise UserError(f"config file {str(path)!r} cannot be parsed", received=str(err).splitlines()[0],
                        fix="repair the file") from None
    except Exception as err:  # yaml's errors
        if type(err).__module__.startswith("yaml"):
            raise UserError(f"config file {str(path)!r} cannot be parsed", received=str(err).splitlines()[0],
                            fix="repair the file") from None
        raise
    if not isinstance(data, dict):
        raise UserError(f"config file {str(path)!r} does not hold a table of settings", expected="key: value pairs",
                        received=type(data).__name__, fix="write the hyperparameters as key: value pairs")
    return data


def _set(out: dict[str, Any], dotted: str, value: Any) -> None:
    node = out
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def _convert(dotted: str, value: Any, name: str) -> Any:
    def bad(expected: str) -> UserError:
        return UserError(f"config: {name} = {value!r} cannot be read", expected=expected, received=repr(value),
                         fix=f"write {name} as {expected}")

    if dotted == "optim.name":
        key = str(value).lower().replace("-", "_")
        return OPTIMIZERS.get(key, key)
    if dotted == "schedule.name":
        key = str(value).lower().replace("-", "_").replace(" ", "_")
        return SCHEDULES.get(key, key)
    if dotted == "train.precision":
        return PRECISIONS.get(str(value).lower(), str(value).lower())
    if dotted == "early_stopping.enabled":
        return bool(value)
    if dotted in ("data.batch_size", "train.epochs", "early_stopping.patience"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise bad("a whole number")
        return int(value)
    if dotted == "model.dropout" and isinstance(value, list):
        return [float(v) for v in value]
    if isinstance(value, bool) and dotted.startswith("mixup."):
        raise bad("an alpha such as 0.2")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad("a number") from None


def foreign_config(data: dict[str, Any]) -> tuple[dict[str, Any], int | None, str | None, list[str]]:
    """(config dict of the stated keys only, classes, task, assumptions) from a foreign config's contents."""
    out: dict[str, Any] = {}
    classes: int | None = None
    task: str | None = None
    ignored: list[str] = []
    unknown_values: list[str] = []
    flat: list[tuple[str, Any]] = []
    for key, value in data.items():
        k = str(key).lower().replace("-", "_")
        if k in sections() and isinstance(value, dict):
            for sub, v in value.items():
                _set(out, f"{k}.{sub}", v)
        elif isinstance(value, dict):  # optimizer: {name: adam, lr: 1e-3}
            for sub, v in value.items():
                s = str(sub).lower().replace("-", "_")
                flat.append((k if s in ("name", "type") else s, v))
        else:
            flat.append((k, value))
    for k, value in flat:
        if k in ("classes", "num_classes", "num_labels", "n_classes"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"config: {k} = {value!r} cannot be read", expected="a whole number of classes >= 1",
                                received=repr(value), fix=f"write {k} = 10 (say)")
            classes = value
        elif k == "task":
            task = str(value).lower()
        elif k in ("fp16", "bf16") and isinstance(value, bool):
            if value:
                _set(out, "train.precision", k)
        elif k in KEYS:
            _set(out, KEYS[k], _convert(KEYS[k], value, k))
        else:
            ignored.append(k)
    assumptions = []
    name = out.get("optim", {}).get("name")
    if name is not None and name not in set(OPTIMIZERS.values()):
        unknown_values.append(f"optimizer {name!r} (its LR range is not judged)")
        out["optim"].pop("name")
    sched = out.get("schedule", {}).get("name")
    if sched is not None and sched not in set(SCHEDULES.values()):
        unknown_values.append(f"schedule {sched!r}")
        out["schedule"].pop("name")
    if unknown_values:
        assumptions.append(f"config values with no trainwise counterpart, not used: {', '.join(unknown_values)}")
    if ignored:
        assumptions.append(f"config keys with no trainwise meaning, not used: {', '.join(ignored)}")
    _validate(out)
    return out, classes, task, assumptions


def _validate(out: dict[str, Any]) -> None:
    """The stated keys must form a valid trainwise config (defaults fill the rest only for this check)."""
    from trainwise.config import Config, build_config

    merged = Config().to_dict()
    for section, values in out.items():
        if not isinstance(values, dict):
            raise UserError(f"config: {section!r} must be a table of settings", received=repr(values),
                            fix=f"write [{section}] with its keys, or drop it")
        merged[section] = merged.get(section, {}) | values
    build_config(merged, source="config")  # a wrong type or value is a one-line UserError naming the key


def check_task(classes: int | None, task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise UserError(f"unknown task {task!r}", expected=f"one of {', '.join(TASKS)}", fix="pass --task multiclass, binary or regression")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 2):
        raise UserError(f"classes = {classes!r} is not a number of classes", expected="a whole number >= 2",
                        fix="pass --classes K with K the number of classes")
    if task == "binary" and classes not in (None, 2):
        raise UserError(f"task binary with {classes} classes", expected="classes = 2 for a binary task",
                        fix="pass --task multiclass, or --classes 2")
    if task == "regression" and classes is not None:
        raise UserError("task regression with a number of classes", expected="no --classes for regression",
                        fix="drop --classes, or pass --task multiclass")

"""A finished run as a usable model: its weights, plus what its inputs must look like (preprocess.json).

``preprocess.json`` is written by the Trainer into every run directory. It records what the model
expects, so that new data can be fed to it without the training data: the input shape, the class names,
the task, and the normalization statistics of the training split (applied to new inputs exactly as
they were to the training data). ``predict`` and ``export`` build on :func:`load_saved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.config import Config, DataConfig
from trainwise.errors import UserError
from trainwise.rundir import PREPROCESS, WEIGHTS, RunDir, check_weights

PREPROCESS_FORMAT = 1


def describe_inputs(data, cfg: DataConfig) -> dict[str, Any]:
    """The contents of preprocess.json for a run trained on ``data`` (a DataSplits)."""
    return {
        "format": PREPROCESS_FORMAT,
        "task": data.task,
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "input_shape": list(data.input_shape),
        "feature_dim": data.feature_dim,
        "features_key": cfg.features,
        "target": cfg.target,
        "normalization": data.normalization,
    }


def load_preprocess(run_dir: Path, cfg: Config) -> dict[str, Any]:
    """preprocess.json; for runs written before it existed, rebuilt from the run's data config."""
    run = RunDir(run_dir)
    if run.file(PREPROCESS).is_file():
        return checked_preprocess(run.read_json(PREPROCESS), run.file(PREPROCESS))
    from trainwise.data import prepare_data

    return describe_inputs(prepare_data(cfg.data), cfg.data)


class Preprocessed(nn.Module):
    """The trained model with the training split's normalization in front: it takes raw inputs.

    ``forward(x)`` or ``forward(x, features)`` for models with an extra feature vector; returns logits.
    """

    def __init__(self, model: nn.Module, info: dict[str, Any]):
        super().__init__()
        self.model = model
        self.has_features = info["feature_dim"] > 0
        norm = info.get("normalization") or {}
        for name in ("input", "features"):
            stats = norm.get(name)
            mean = torch.tensor(stats["mean"] if stats else 0.0, dtype=torch.float32)
            std = torch.tensor(stats["std"] if stats else 1.0, dtype=torch.float32)
            self.register_buffer(f"{name}_mean", mean)
            self.register_buffer(f"{name}_std", std)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        x = (x - self.input_mean) / self.input_std
        if not self.has_features:
            return self.model(x)
        return self.model(x, (features - self.features_mean) / self.features_std)


@dataclass
class SavedRun:
    run_dir: Path
    config: Config
    info: dict[str, Any]
    model: Preprocessed  # in eval mode, on the CPU

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.info["input_shape"])


def load_saved(run_dir: str | Path, weights: str = "final", model: nn.Module | None = None) -> SavedRun:
    """Rebuild a run's model (or take ``model``, for runs trained on your own nn.Module) and load its weights."""
    from trainwise.models import build_model

    run = RunDir(run_dir).check()
    check_weights(weights)
    cfg = run.load_config()
    info = load_preprocess(run.path, cfg)
    if not run.weights_file(weights).exists():
        run.load_weights(weights)  # the one-line error that lists the weights the run has
    if model is None:
        out_dim = 1 if info["task"] == "binary" else info["num_classes"]
        # the run's own weights replace any pretrained ones: model.weights need not exist any more
        model = build_model(cfg.model.model_copy(update={"weights": None}), tuple(info["input_shape"]), info["feature_dim"], out_dim)
    run.load_weights_into(model, weights, f"the model {cfg.model.name!r}",
                          fix="for a run trained on your own nn.Module, pass it: trainwise.predict(run_dir, x, model=my_module)")
    return SavedRun(run.path, cfg, info, Preprocessed(model.cpu(), info).eval())


_PREPROCESS_TYPES = {"task": str, "num_classes": int, "class_names": list, "input_shape": list, "feature_dim": int}


def checked_preprocess(info: dict[str, Any], path: Path) -> dict[str, Any]:
    """preprocess.json with the keys predict and export rely on, of the right types (else a one-line error)."""
    for key, kind in _PREPROCESS_TYPES.items():
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise UserError(f"{path} is damaged: {key!r} is missing or not a {kind.__name__}", expected="the preprocess.json trainwise writes",
                            received=f"{key} = {info.get(key)!r}"[:120], fix="restore the file from a copy or train the run again")
    if not all(isinstance(n, int) and n > 0 for n in info["input_shape"]) or len(info["class_names"]) < 2:
        raise UserError(f"{path} is damaged", expected="a positive input_shape and two or more class_names",
                        received=f"input_shape {info['input_shape']}, {len(info['class_names'])} class names"[:120],
                        fix="restore the file from a copy or train the run again")
    norm = info.get("normalization") or {}
    for name in ("input", "features"):
        stats = norm.get(name) if isinstance(norm, dict) else None
        if stats is not None and not (isinstance(stats, dict) and "mean" in stats and "std" in stats):
            raise UserError(f"{path} is damaged: normalization.{name} lacks mean and std", received=repr(stats)[:120],
                            fix="restore the file from a copy or train the run again")
    return info


def to_batch(x: Any, input_shape: tuple[int, ...], name: str = "inputs") -> torch.Tensor:
    """Any array-like -> a float32 tensor shaped (N, *input_shape): flat rows and single samples are reshaped."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32, copy=True))
    t = t.float()
    size = int(np.prod(input_shape))
    if tuple(t.shape) == tuple(input_shape):
        t = t.unsqueeze(0)  # one sample
    elif t.ndim >= 1 and t.numel() == len(t) * size and len(t) > 0:
        t = t.reshape(len(t), *input_shape)
    else:
        raise UserError(f"the {name} do not match the model", expected=f"samples shaped {tuple(input_shape)} (or rows of {size} values)",
                        received=f"an array shaped {tuple(t.shape)}")
    finite = torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
    if not bool(finite.all()):
        bad = int(torch.argmin(finite.int()))
        raise UserError(f"the {name} contain NaN or Inf", expected="finite numbers", received=f"a non-finite value in sample {bad}")
    return t

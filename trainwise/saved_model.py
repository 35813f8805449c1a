"""A finished run as a usable model: its weights, plus what its inputs must look like (preprocess.json).

``preprocess.json`` is written by the Trainer into every run directory. It records what the model
expects, so that new data can be fed to it without the training data: the input shape, the class names,
the task, and the normalization statistics of the training split (applied to new inputs exactly as
they were to the training data). ``predict`` and ``export`` build on :func:`load_saved`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.config import Config, DataConfig, build_config, read_config_file
from trainwise.errors import UserError

PREPROCESS_FORMAT = 1
WEIGHTS = ("final", "best", "last")


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
    path = run_dir / "preprocess.json"
    if path.is_file():
        return json.loads(path.read_text())
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
    from trainwise import checkpointing
    from trainwise.api import check_run_dir
    from trainwise.models import build_model

    run_dir = check_run_dir(run_dir)
    if weights not in WEIGHTS:
        raise UserError("bad weights choice", expected=" | ".join(WEIGHTS), received=weights)
    cfg = build_config(read_config_file(run_dir / "config.toml"), source=str(run_dir / "config.toml"))
    info = load_preprocess(run_dir, cfg)
    path = run_dir / "checkpoints" / ("last.pt" if weights == "last" else f"{weights}.safetensors")
    if not path.exists():
        raise UserError(f"no {weights} weights in {run_dir}", expected=str(path), fix="use weights final, best or last")
    if model is None:
        out_dim = 1 if info["task"] == "binary" else info["num_classes"]
        # the run's own weights replace any pretrained ones: model.weights need not exist any more
        model = build_model(cfg.model.model_copy(update={"weights": None}), tuple(info["input_shape"]), info["feature_dim"], out_dim)
    try:
        model.load_state_dict(checkpointing.load_weights(path))
    except RuntimeError as err:
        raise UserError(f"the weights in {path} do not fit the model {cfg.model.name!r}", received=str(err).splitlines()[0][:200],
                        fix="for a run trained on your own nn.Module, pass it: trainwise.predict(run_dir, x, model=my_module)") from None
    return SavedRun(run_dir, cfg, info, Preprocessed(model.cpu(), info).eval())


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

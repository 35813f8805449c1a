"""Can a doctor's fix apply to this run? A fix is a ``--set`` override; it applies when it changes the run.

A fix that validates against the config can still do nothing: ``model.hidden`` means nothing to a user's
``package.module:factory`` model, ``data.normalize`` nothing to arrays handed over already prepared. Rather
than keep a list of which builder reads which key (a list that drifts), the check builds the thing the key
feeds -- the network, the data -- with and without the change and compares: identical means the fix
cannot apply, and the reason says so. Nothing here trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from trainwise.config import Config, flatten_dotted, parse_override
from trainwise.data import DataSplits, prepare_data
from trainwise.errors import UserError
from trainwise.models import build_model

ModelFactory = Callable[[Config, DataSplits], torch.nn.Module]
DataFactory = Callable[[Config], DataSplits]

# Keys the Trainer reads itself: they change the run whatever the model and data are.
_DATA_KEYS_READ_BY_TRAINER = {"data.batch_size", "data.eval_batch_size", "data.loader", "data.num_workers", "data.drop_last",
                              "data.per_device_batch"}


@dataclass
class Sources:
    """Where an attempt's model and data come from: the config (None), or the caller's factories/arrays."""

    model: ModelFactory | None = None
    data: DataSplits | DataFactory | None = None
    callbacks: Callable[[], list] | None = None

    def build_data(self, cfg: Config) -> DataSplits:
        if self.data is None:
            return prepare_data(cfg.data)
        return self.data(cfg) if callable(self.data) else self.data

    def build_model(self, cfg: Config, data: DataSplits) -> torch.nn.Module | None:
        """The caller's model, or None (the Trainer builds it from the config)."""
        return self.model(cfg, data) if self.model is not None else None

    def structure(self, cfg: Config, data: DataSplits) -> str:
        """What a network is, without its weights: module tree and parameter shapes."""
        model = self.build_model(cfg, data)
        if model is None:
            out_dim = 1 if data.task == "binary" else data.num_classes
            model = build_model(cfg.model, data.input_shape, data.feature_dim, out_dim)
        shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
        return f"{model!r}\n{shapes}"


def apply_fix(cfg: Config, fix: str) -> Config:
    key, value = parse_override(fix)
    return cfg.replace({key: value})


def why_not(fix: str, cfg: Config, sources: Sources, data: DataSplits) -> str | None:
    """None when ``fix`` changes this run; otherwise the reason it cannot apply, in one sentence."""
    try:
        key, value = parse_override(fix)
        new = cfg.replace({key: value})
    except UserError as err:
        return f"it is not a valid setting for this config ({err})"
    if new.to_dict() == cfg.to_dict():
        return f"the run already has {key}={_show(flatten_dotted(cfg.to_dict()).get(key))}"
    section = key.split(".", 1)[0]
    if section == "model" and key not in ("model.name", "model.kwargs"):
        try:
            same = sources.structure(cfg, data) == sources.structure(new, data)
        except Exception as err:  # a model that cannot be built with the change is not a change to try
            return f"the model cannot be built with it ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})"
        if same:
            builder = f"model.name={cfg.model.name}" if sources.model is None else "the model factory given"
            return f"{builder} builds the same network with and without {key} (it is not one of that model's settings)"
    if section == "data" and key not in _DATA_KEYS_READ_BY_TRAINER:
        if sources.data is not None and not callable(sources.data):
            return f"the data was given as prepared arrays, so {key} is not applied to it"
        if sources.data is not None and _same_data(sources.build_data(cfg), sources.build_data(new)):
            return f"the data factory given returns the same data with and without {key}"
    return None


def _same_data(a: DataSplits, b: DataSplits) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.train.inputs, b.train.inputs)) and torch.equal(a.train.targets, b.train.targets)


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)

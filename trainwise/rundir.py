"""The run directory: the one place that knows its files, reads them with checks and writes them with checksums.

``RunDir(path)`` names every file of a run (the layout is documented in docs/run-directory.md), checks
that a directory is a run (:meth:`RunDir.check`), reads its parts with one-line errors for missing,
non-UTF-8, malformed or damaged files (:meth:`read`, :meth:`read_json`, :meth:`load_config`,
:meth:`load_history`, :meth:`load_weights`), and writes them atomically with their checksums in
``manifest.json`` (trainwise.integrity). Weights are named with one vocabulary, :data:`WEIGHTS`.

It imports neither torch nor the trainer at module level: ``diagnose`` and ``report`` read runs
through it without loading either.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwise import atomic, integrity
from trainwise.errors import UserError

if TYPE_CHECKING:
    import torch

    from trainwise.config import Config
    from trainwise.history import History

# final: the weights the run ended with (what it tested); best: the best epoch by checkpoint.monitor;
# last: the model inside the latest resumable checkpoint; ema: the moving average (ema.enabled); swa: the
# stochastic weight average (swa.enabled).
WEIGHTS = ("final", "best", "last", "ema", "swa")

CONFIG = "config.toml"
HISTORY = "history.jsonl"
SUMMARY = "summary.json"
ENV = "env.json"
PREPROCESS = "preprocess.json"
FINDINGS = "findings.json"
REPORT = "report.html"
MANIFEST = integrity.MANIFEST
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
LAST = "checkpoints/last.pt"
PREVIOUS = "checkpoints/previous.pt"
TENSORBOARD = "tensorboard"
EXPORTED = "exported"
STEPS = "steps.jsonl"  # every optimizer step's loss and LR, appended once per epoch (not in the manifest)
FIX = "fix/fix.json"  # trainwise fix RUN: the chain of repaired runs under RUN/fix/
PROFILE = "startup_profile.json"  # train --profile-startup
WEIGHT_FILES = {"final": "checkpoints/final.safetensors", "best": "checkpoints/best.safetensors", "last": LAST,
                "ema": "checkpoints/ema.safetensors", "swa": "checkpoints/swa.safetensors"}
# What a run writes; ``train --overwrite`` removes exactly these (and nothing the user put beside them).
RUN_FILES = (CONFIG, HISTORY, STEPS, SUMMARY, ENV, PREPROCESS, FINDINGS, REPORT, MANIFEST, PROFILE, "lr_find.json", "lr_find.png",
             *WEIGHT_FILES.values(), PREVIOUS, LAST + ".corrupt", PREVIOUS + ".corrupt")
RUN_FOLDERS = (TENSORBOARD, EXPORTED, "fix")


def _decoded(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read {path}", expected="UTF-8 text as trainwise writes it", received=f"bytes that are not UTF-8 ({err.reason} at byte {err.start})",
                        fix="restore the file from a copy or train the run again") from None
    except OSError as err:
        raise UserError(f"cannot read {path}", received=f"{type(err).__name__}: {err.strerror or err}") from None


def check_weights(weights: str) -> str:
    if weights not in WEIGHTS:
        raise UserError("unknown weights", expected=" | ".join(WEIGHTS), received=weights,
                        fix="final: as the run ended; best: the best epoch; last: the latest checkpoint; ema: the moving average")
    return weights


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST

    @property
    def previous_checkpoint(self) -> Path:
        return self.path / PREVIOUS

    def weights_file(self, weights: str) -> Path:
        return self.path / WEIGHT_FILES[check_weights(weights)]

    # ------------------------------------------------------------------------------------ checks
    def is_run(self) -> bool:
        return self.config_file.is_file()

    def check(self) -> RunDir:
        """This directory, if it is a run directory; a one-line UserError otherwise."""
        if not self.path.is_dir():
            if self.path.exists():
                raise UserError(f"{self.path} is not a run directory", expected="a directory written by trainwise train",
                                received="a file", fix="pass the run directory itself")
            raise UserError(f"run directory {str(self.path)!r} does not exist", fix="pass the directory that trainwise train wrote (see --out)")
        if not self.is_run():
            raise UserError(f"{self.path} is not a trainwise run directory", expected="config.toml in it", fix="pass a directory written by trainwise train")
        return self

    def is_finished(self) -> bool:
        return (self.path / SUMMARY).is_file()

    # ------------------------------------------------------------------------------------ reading
    def read_text(self, name: str) -> str:
        """A text file of the run, checked against the manifest."""
        integrity.verify(self.path / name)
        return _decoded(self.path / name)

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON object of the run ({} when the file is absent); damaged or malformed files are UserErrors."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            data = json.loads(self.read_text(name))
        except (ValueError, RecursionError) as err:
            raise UserError(f"{path}: malformed JSON", expected="the JSON object trainwise writes", received=str(err).splitlines()[0][:120],
                            fix="restore the file from a copy or train the run again") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: malformed JSON", expected="a JSON object", received=f"a JSON {type(data).__name__}")
        return data

    def read_config_dict(self) -> dict[str, Any]:
        """config.toml as a dict. A config that differs from the one the run wrote is read with a warning
        (editing it is allowed; resume refuses a config its checkpoint was not written under)."""
        path = self.config_file
        if not path.is_file():
            raise UserError(f"{self.path} is not a trainwise run directory", expected="config.toml in it", fix="pass a directory written by trainwise train")
        try:
            integrity.verify(path)
        except integrity.DamagedFile:
            integrity.log.warning(f"warning: {path} differs from the config the run was written with")
        try:
            raw = tomllib.loads(_decoded(path))
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: malformed config", expected="valid TOML", received=str(err).splitlines()[0],
                            fix="restore config.toml from a copy or train the run again") from None
        if not raw:
            raise UserError(f"{path} is empty", expected="the resolved config trainwise wrote (every section)",
                            fix="restore config.toml from a copy or train the run again")
        return raw

    def load_config(self) -> Config:
        from trainwise.config import build_config

        return build_config(self.read_config_dict(), source=str(self.config_file))

    def load_history(self) -> History:
        from trainwise.history import History

        return History.load(self.history_file) if self.history_file.exists() else History()

    def read(self) -> dict[str, Any]:
        """Config (as a dict), history records, summary and environment (absent parts empty)."""
        self.check()
        return {"config": self.read_config_dict(), "history": self.load_history().records,
                "summary": self.read_json(SUMMARY), "env": self.read_json(ENV)}

    def load_weights(self, weights: str = "final", device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """A state dict of the run's ``weights`` (one of WEIGHTS), checked against the manifest."""
        from trainwise import checkpointing

        path = self.weights_file(weights)
        if not path.exists():
            present = [w for w in WEIGHTS if (self.path / WEIGHT_FILES[w]).exists()]
            raise UserError(f"no {weights} weights in {self.path}", expected=str(path),
                            fix=f"use weights {' | '.join(present)}" if present else "train the run first")
        return checkpointing.load_weights(path, device)

    def load_weights_into(self, model: torch.nn.Module, weights: str = "final", model_name: str = "the model",
                          fix: str = "for a run trained on your own nn.Module, pass that module (model=...)") -> None:
        state = self.load_weights(weights, next((p.device for p in model.parameters()), "cpu"))
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(f"the weights in {self.weights_file(weights)} do not fit {model_name}", received=str(err).splitlines()[0][:200],
                            fix=fix) from None

    # ------------------------------------------------------------------------------------ writing
    def recorder(self, name: str) -> Callable[[Path], None]:
        """The hook that lists the new version of ``name`` in the manifest just before it replaces the old."""
        return lambda tmp: integrity.record(self.path, {name: tmp})

    def write_text(self, name: str, text: str) -> None:
        atomic.write_text(self.path / name, text, before_rename=self.recorder(name))

    def write_json(self, name: str, obj: Any) -> None:
        atomic.write_json(self.path / name, obj, before_rename=self.recorder(name))

    def save_weights(self, weights: str, model: torch.nn.Module, metadata: dict[str, Any] | None = None) -> None:
        from trainwise import checkpointing

        name = WEIGHT_FILES[check_weights(weights)]
        checkpointing.save_weights(model, self.path / name, metadata, before_rename=self.recorder(name))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """last.pt, the old one kept as previous.pt; the manifest lists both moves before they happen."""
        from trainwise import checkpointing

        checkpointing.save_resumable(state, self.last_checkpoint,
                                     before_rotate=lambda ready: integrity.record_rotation(self.path, LAST, PREVIOUS, ready))

    def clear(self) -> list[Path]:
        """Remove the files a run writes (``train --overwrite``); returns what was removed."""
        import shutil

        removed = []
        for name in RUN_FILES:
            path = self.path / name
            if path.is_file():
                path.unlink()
                removed.append(path)
        for name in RUN_FOLDERS:
            if (self.path / name).is_dir():
                shutil.rmtree(self.path / name)
                removed.append(self.path / name)
        for directory in (self.path, self.checkpoints):
            if directory.is_dir():
                removed += atomic.remove_stale_temps(directory)
        return removed

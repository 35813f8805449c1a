"""Checkpoint files, all loadable without executing code.

- ``best.safetensors``: model weights only (safetensors), with the epoch and metric as metadata.
- ``last.pt``: everything resume needs (model, optimizer, scheduler, scaler, callbacks, RNG states,
  position in the data order, partial epoch metrics), saved with ``torch.save`` and loaded with
  ``torch.load(weights_only=True)``, whose unpickler accepts only tensors and plain containers: a file
  that carries code is refused.

Writes are atomic (trainwise.atomic). Before a new ``last.pt`` replaces the old one, the old one becomes
``previous.pt``, so a corrupt or missing latest file still leaves a good one to resume from: resume
(:func:`resume_point`) says so in a warning, sets a corrupt ``last.pt`` aside as ``last.pt.corrupt`` and
continues from ``previous.pt``. What resume promises is written down in docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import pickle
import pickletools
import random
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainwise import atomic, faults, integrity
from trainwise.errors import UserError
from trainwise.rundir import CHECKPOINTS, PREVIOUS

if TYPE_CHECKING:
    from trainwise.config import Config

log = logging.getLogger("trainwise")

# What a resumable checkpoint must hold (Trainer.checkpoint_state); anything else is not a trainwise checkpoint.
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "scaler", "callbacks", "rng", "epoch", "epoch_done", "batch_index",
                 "step", "train_metrics", "history_len")
# Leaf types torch.load(weights_only=True) reads back without executing code (exact types: a NumPy float is
# a float subclass, yet loading it needs code).
_PLAIN_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device, torch.Size)


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, Any] | None = None,
                 before_rename: Callable[[Path], None] | None = None) -> None:
    from safetensors.torch import save

    # safetensors refuses shared storage; contiguous clones of the state dict avoid that.
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    atomic.atomic_write(path, lambda handle: handle.write(save(tensors, metadata=meta)), before_rename)


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix == ".pt":
        state = load_resumable(path)
        return state["model"]
    integrity.verify(path)
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:
        raise UserError(f"cannot read weights {path}", expected="a safetensors file written by trainwise", received=str(err).splitlines()[0]) from None


def save_resumable(state: dict[str, Any], path: Path, before_rotate: Callable[[Path], None] | None = None) -> None:
    """Write ``state`` as ``path`` (last.pt) atomically, keeping the file it replaces as previous.pt.

    ``before_rotate(ready)`` runs when the new file is complete, before any rename (the manifest)."""
    check_plain(state)

    def write(handle) -> None:
        torch.save(state, handle)

    tmp_ready = path.with_name(f".{path.name}.ready")
    try:
        atomic.atomic_write(tmp_ready, write)
    except atomic.DiskFull:
        raise atomic.DiskFull(path) from None
    if before_rotate is not None:
        before_rotate(tmp_ready)
    if path.exists():
        os.replace(path, path.with_name(Path(PREVIOUS).name))
    faults.point("checkpoint-rename")
    os.replace(tmp_ready, path)


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Refuse, at save time, a value that ``torch.load(weights_only=True)`` could not read back at resume."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN_LEAVES:
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            check_plain(key, f"{where} (a key)")
            check_plain(value, f"{where}.{key}")
    elif type(obj) in (list, tuple, set):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
    else:
        raise UserError(f"cannot checkpoint {where}: it is a {type(obj).__module__}.{type(obj).__qualname__}",
                        expected="tensors, numbers, strings, None, lists, tuples, sets and dicts (resume loads checkpoints without executing code)",
                        fix="return plain values from state_dict(), e.g. float(x) for a NumPy number, list(x) for a deque")


def load_resumable(path: Path) -> dict[str, Any]:
    """Load a last.pt/previous.pt: refused if it carries code, CorruptCheckpoint if it is not a trainwise
    checkpoint or its bytes differ from the ones written (the run's manifest; checked after the safe load,
    so that a file carrying code is named as such)."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files; the error says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        code = code_in_pickle(path, err)
        if code is None:
            raise CorruptCheckpoint(path, err) from None
        raise UserError(f"refusing to load {path}", expected="a checkpoint of tensors and plain values",
                        received=f"a pickle that would import and call {code} while loading",
                        fix="only load checkpoints you trust, or re-save the weights with safetensors") from None
    except Exception as err:
        raise CorruptCheckpoint(path, err) from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise CorruptCheckpoint(path, ValueError(f"not a trainwise resumable checkpoint (holds {found})"))
    try:
        integrity.verify(path)
    except integrity.DamagedFile as err:
        raise CorruptCheckpoint(path, ValueError(f"damaged: {err.why}")) from None
    return state


def code_in_pickle(path: Path, err: Exception) -> str | None:
    """The first callable a refused pickle names (torch's error says it, or the opcodes do); None: just damaged bytes."""
    named = re.search(r"GLOBAL ([\w.]+)", str(err))
    if named:
        return named.group(1)
    if zipfile.is_zipfile(path):
        return None
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for op, arg, _ in pickletools.genops(handle):
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return ".".join(strings[-2:])
                if isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # not a pickle after all: the bytes are damaged
        pass
    return None


class CorruptCheckpoint(UserError):
    def __init__(self, path: Path, err: Exception):
        first = str(err).splitlines()[0][:200] if str(err).strip() else "unexpected end of file"
        if first.startswith("Weights only load failed"):  # torch's boilerplate about code; here the bytes are just bad
            first = "unreadable pickle data"
        self.detail = f"{type(err).__name__}: {first}"
        super().__init__(f"checkpoint {path} is corrupt or truncated", received=self.detail,
                         fix="resume uses checkpoints/previous.pt when it exists; otherwise start the run again")
        self.path = path


def latest_resumable(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """Load ``last.pt``, falling back to ``previous.pt`` when the latest is missing or corrupt.

    A fallback is reported as a warning on the ``trainwise`` logger; a corrupt ``last.pt`` is renamed
    ``last.pt.corrupt`` so that the next checkpoint does not rotate it into ``previous.pt``.
    """
    from trainwise.rundir import RunDir

    run = RunDir(run_dir)
    ckpt_dir = run.checkpoints
    errors: list[CorruptCheckpoint] = []
    for path in (run.last_checkpoint, run.previous_checkpoint):
        if not path.exists():
            continue
        try:
            ckpt = load_resumable(path)
        except CorruptCheckpoint as err:
            errors.append(err)
            continue
        for bad in errors:
            os.replace(bad.path, bad.path.with_name(bad.path.name + ".corrupt"))
            log.warning(f"warning: checkpoint {bad.path} is corrupt or truncated ({bad.detail}); kept as {bad.path.name}.corrupt; "
                        f"resuming from {path}")
        if path != run.last_checkpoint and not errors:
            log.warning(f"warning: {run.last_checkpoint} is missing (the run was stopped while replacing it); resuming from {path}")
        return ckpt, path
    if errors:
        raise UserError(f"no usable checkpoint in {ckpt_dir}", received=" | ".join(e.detail for e in errors), fix="start the run again with trainwise train")
    raise UserError(f"no checkpoint to resume in {ckpt_dir}", expected="checkpoints/last.pt", fix="start the run with trainwise train first")


def resume_point(run_dir: Path, config: Config) -> tuple[dict[str, Any], Path]:
    """The checkpoint ``trainwise resume`` continues from, checked against the run's config.

    Clears temporary files that killed writes left behind, loads the latest good checkpoint and refuses one
    written under a different config (e.g. after config.toml was edited), naming the first key that differs.
    """
    for directory in (run_dir, run_dir / CHECKPOINTS):
        if directory.is_dir():
            atomic.remove_stale_temps(directory)
    ckpt, path = latest_resumable(run_dir)
    if "config" in ckpt:
        from trainwise.config import flatten_dotted

        written, now = flatten_dotted(ckpt["config"]), flatten_dotted(config.to_dict())
        # Keys added to trainwise later do not count, nor train.epochs: resume --set train.epochs=N extends a run.
        differ = sorted(k for k in written if written[k] != now.get(k) and k != "train.epochs")
        if differ:
            key = differ[0]
            raise UserError(f"{path} belongs to another config: {key} differs", expected=f"{key} = {written.get(key)!r} as when it was written",
                            received=f"{key} = {now.get(key)!r} in {run_dir / 'config.toml'}",
                            fix="restore config.toml as it was, or start a new run with trainwise train --out ANOTHER_DIR")
    return ckpt, path


# ------------------------------------------------------------------------------------------------ RNG

def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                  "has_gauss": np_state[3], "cached": np_state[4]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    # random.setstate wants tuples; a round trip through torch.save keeps them, but be lenient with lists.
    return tuple(_as_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x

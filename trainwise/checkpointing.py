"""Checkpoint files, all loadable without executing code.

- ``best.safetensors``: model weights only (safetensors), with the epoch and metric as metadata.
- ``last.pt``: everything resume needs (model, optimizer, scheduler, scaler, callbacks, RNG states,
  position in the data order, partial epoch metrics), saved with ``torch.save`` and loaded with
  ``torch.load(weights_only=True)``, whose unpickler accepts only tensors and plain containers: a file
  that carries code is refused.

Writes are atomic (trainwise.atomic). Before a new ``last.pt`` replaces the old one, the old one becomes
``previous.pt``, so a corrupt or missing latest file still leaves a good one to resume from.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwise import atomic
from trainwise.errors import UserError


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, Any] | None = None) -> None:
    from safetensors.torch import save

    # safetensors refuses shared storage; contiguous clones of the state dict avoid that.
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    atomic.atomic_write(path, lambda handle: handle.write(save(tensors, metadata=meta)))


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix == ".pt":
        state = load_resumable(path)
        return state["model"]
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:
        raise UserError(f"cannot read weights {path}", expected="a safetensors file written by trainwise", received=str(err).splitlines()[0]) from None


def save_resumable(state: dict[str, Any], path: Path) -> None:
    def write(handle) -> None:
        torch.save(state, handle)

    tmp_ready = path.with_name(f".{path.name}.ready")
    atomic.atomic_write(tmp_ready, write)
    if path.exists():
        os.replace(path, path.with_name("previous.pt"))
    os.replace(tmp_ready, path)


def load_resumable(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"refusing to load {path}", expected="a checkpoint of tensors and plain values",
                        received="a pickle that would execute code: " + str(err).splitlines()[0][:160],
                        fix="only load checkpoints you trust, or re-save the weights with safetensors") from None
    except Exception as err:
        raise CorruptCheckpoint(path, err) from None


class CorruptCheckpoint(UserError):
    def __init__(self, path: Path, err: Exception):
        super().__init__(f"checkpoint {path} is corrupt or truncated", received=str(err).splitlines()[0][:200] if str(err) else type(err).__name__,
                         fix="resume uses checkpoints/previous.pt when it exists; otherwise start the run again")
        self.path = path


def latest_resumable(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """Load ``last.pt``, falling back to ``previous.pt`` when the latest is missing or corrupt."""
    ckpt_dir = run_dir / "checkpoints"
    errors = []
    for name in ("last.pt", "previous.pt"):
        path = ckpt_dir / name
        if not path.exists():
            continue
        try:
            return load_resumable(path), path
        except CorruptCheckpoint as err:
            errors.append(str(err))
    if errors:
        raise UserError(f"no usable checkpoint in {ckpt_dir}", received=" | ".join(errors), fix="start the run again with trainwise train")
    raise UserError(f"no checkpoint to resume in {ckpt_dir}", expected="checkpoints/last.pt", fix="start the run with trainwise train first")


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

"""Predict classes and probabilities for new data with a finished run.

``predict(run_dir, x)`` takes raw inputs, in the units the training data had before normalization
(the run's ``preprocess.json`` normalizes them with the training split's statistics), and returns the
predicted class names and the per-class probabilities. ``x`` is an array/tensor or a file:

- ``.npz``: array ``x`` (or the only array), plus the run's feature array for fusion models; the labels
  (the run's ``data.target`` key, e.g. ``y``) are used for an accuracy line when present;
- ``.npy``: one array;
- ``.csv``: numeric columns, with or without a header; a column named like the run's ``data.target``
  is taken as labels and one named ``id`` as sample ids, the rest are features;
- IDX files (``*-ubyte``, ``.idx``, optionally ``.gz``): unsigned bytes, divided by 255 as trainwise's
  Fashion-MNIST source does;
- ``.pt``/``.pth``: a tensor, or a dict with ``x`` (loaded with ``weights_only=True``).

Flat rows are reshaped to the model's input shape (64 values -> 1x8x8 for digits).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise.errors import UserError
from trainwise.saved_model import SavedRun, load_saved, to_batch

FORMATS = ".npz, .npy, .csv, IDX (*-ubyte, .idx, .gz), .pt/.pth"


@dataclass
class Inputs:
    """What an input file holds: samples, optional extra features, labels and ids when the file has them."""

    x: Any
    features: Any = None
    labels: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)


def read_inputs(path: str | Path, info: dict[str, Any]) -> Inputs:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file {str(path)!r} not found", expected=f"one of {FORMATS}")
    try:
        inputs = _read_inputs(path, info)
    except UserError:
        raise
    except Exception as err:  # each reader's own errors for damaged or unexpected files: say which file, in one line
        detail = str(err).splitlines()[0][:160] if str(err).strip() else "unexpected end of data"
        if "allow_pickle" in detail:
            detail = "an array of Python objects (loading it would run code)"
        raise UserError(f"cannot read the input file {path}", expected=f"numeric data in one of {FORMATS}",
                        received=f"{type(err).__name__}: {detail}", fix="pass a file of numbers (e.g. numpy.save of a float array)") from None
    for what, array in (("inputs", inputs.x), ("features", inputs.features)):
        if array is None and what == "features":
            continue
        kind = getattr(getattr(array, "dtype", None), "kind", None)  # NumPy's dtype kinds; a torch tensor is numeric
        if not hasattr(array, "shape") or (kind is not None and kind not in "biuf"):
            raise UserError(f"cannot read the input file {path}", expected=f"numeric {what}",
                            received=f"an array of {array.dtype}" if hasattr(array, "dtype") else type(array).__name__,
                            fix="pass a file of numbers (e.g. numpy.save of a float array)")
    return inputs


def _read_inputs(path: Path, info: dict[str, Any]) -> Inputs:
    name = path.name.lower()
    if name.endswith(".npz"):
        return _npz(path, info)
    if name.endswith(".npy"):
        return Inputs(np.load(path, allow_pickle=False))
    if name.endswith(".csv"):
        return _csv(path, info)
    if "ubyte" in name or name.endswith((".idx", ".idx.gz")):
        from trainwise.data.sources import read_idx

        return Inputs(read_idx(path).astype(np.float32) / 255.0)
    if name.endswith((".pt", ".pth")):
        obj = _load_tensors(path)
        if isinstance(obj, dict) and "x" in obj:
            return Inputs(obj["x"], obj.get(info.get("features_key") or "features"))
        if isinstance(obj, torch.Tensor):
            return Inputs(obj)
        raise UserError(f"{path} holds no tensor", expected="a tensor or a dict with 'x'", received=type(obj).__name__)
    raise UserError(f"unknown input format {path.suffix!r}", expected=f"one of {FORMATS}", received=path.name)


def _load_tensors(path: Path) -> Any:
    """A .pt file of tensors, read without running code; a pickle that would call something is refused by name."""
    import pickle

    from trainwise.checkpointing import code_in_pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        code = code_in_pickle(path, err)
        if code is None:
            raise
        raise UserError(f"refusing to load {path}", expected="a file of tensors", received=f"a pickle that would import and call {code} while loading",
                        fix="save the inputs with torch.save(tensor) or numpy.save, from a source you trust") from None


def _npz(path: Path, info: dict[str, Any]) -> Inputs:
    npz = np.load(path, allow_pickle=False)
    keys = list(npz.files)
    x_key = "x" if "x" in keys else (keys[0] if len(keys) == 1 else None)
    if x_key is None:
        raise UserError(f"{path} has no array 'x'", expected="an array named x (or a single array)", received=keys)
    target, fkey = info.get("target") or "y", info.get("features_key")
    labels = npz[target].astype(np.int64) if target in keys and target != x_key else None
    return Inputs(npz[x_key], npz[fkey] if fkey and fkey in keys else None, labels)


def _csv(path: Path, info: dict[str, Any]) -> Inputs:
    with open(path, newline="") as handle:
        rows = [r for r in csv.reader(handle) if r]
    if not rows:
        raise UserError(f"{path} is empty", expected="rows of numbers")
    header = rows[0] if not _numeric(rows[0]) else None
    body = rows[1:] if header else rows
    target = info.get("target") or "y"
    label_col = header.index(target) if header and target in header else None
    id_col = header.index("id") if header and "id" in header else None
    ids = [r[id_col] for r in body] if id_col is not None else []
    keep = [i for i in range(len(rows[0])) if i not in (label_col, id_col)]
    try:
        x = np.array([[float(r[i]) for i in keep] for r in body], dtype=np.float32)
    except (ValueError, IndexError) as err:
        raise UserError(f"{path} has a non-numeric or missing value", expected="numbers in every feature column", received=str(err)) from None
    labels = None
    if label_col is not None:
        names = info.get("class_names") or []
        labels = np.array([names.index(r[label_col]) if r[label_col] in names else int(float(r[label_col])) for r in body], dtype=np.int64)
    return Inputs(x, None, labels, ids)


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
        return True
    except ValueError:
        return False


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Logits -> (N, K) probabilities; a binary model's one logit becomes [P(class 0), P(class 1)]."""
    if task == "binary":
        p = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


@torch.no_grad()
def predict_saved(saved: SavedRun, x: Any, features: Any = None, batch_size: int = 1024) -> tuple[list[str], np.ndarray]:
    xs = to_batch(x, saved.input_shape)
    fs = None
    if saved.info["feature_dim"]:
        if features is None:
            raise UserError("the model needs an extra feature vector per sample", expected=f"features with {saved.info['feature_dim']} values per sample",
                            fix=f"pass features=... (or an NPZ file with the array {saved.info.get('features_key')!r})")
        fs = to_batch(features, (saved.info["feature_dim"],), "features")
    out = []
    for lo in range(0, len(xs), batch_size):
        args = (xs[lo : lo + batch_size],) + (() if fs is None else (fs[lo : lo + batch_size],))
        out.append(probabilities(saved.model(*args).float(), saved.info["task"]))
    probs = torch.cat(out).numpy()
    names = saved.class_names
    return [names[i] for i in probs.argmax(axis=1)], probs


def predict(run_dir: str | Path, x: Any, *, features: Any = None, weights: str = "final", model: nn.Module | None = None,
            batch_size: int = 1024) -> tuple[list[str], np.ndarray]:
    """Classes and probabilities for raw inputs ``x`` (array, tensor or file path) with a saved run.

    Returns ``(classes, probabilities)``: the predicted class name per sample and an (N, K) array whose
    columns follow the run's class names. ``weights`` is final, best or last; ``model`` is needed only
    for runs trained on your own ``nn.Module``.
    """
    saved = load_saved(run_dir, weights, model)
    if isinstance(x, (str, Path)):
        inputs = read_inputs(x, saved.info)
        x, features = inputs.x, features if features is not None else inputs.features
    return predict_saved(saved, x, features, batch_size)


def format_predictions(classes: list[str], probs: np.ndarray, class_names: list[str], ids: list, fmt: str) -> str:
    """CSV (id, class, one probability column per class) or JSON (a list of records)."""
    ids = ids or list(range(len(classes)))
    if fmt == "json":  # a list with one record per line
        records = [{"id": i, "class": c, "probabilities": dict(zip(class_names, map(float, p)))} for i, c, p in zip(ids, classes, probs)]
        return "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "class", *(f"p_{n}" for n in class_names)])
    for i, c, p in zip(ids, classes, probs):
        writer.writerow([i, c, *(f"{v:.6g}" for v in p)])
    return buf.getvalue()


def predict_file(run_dir: str | Path, input_path: str | Path, out: str | Path | None = None, weights: str = "final") -> tuple[str, str]:
    """The CLI's work: predict a file, format the result (by ``out``'s suffix: .json, else CSV).

    Returns ``(text, note)``: the formatted predictions and a one-line note (count, accuracy when the
    file has labels).
    """
    saved = load_saved(run_dir, weights)
    inputs = read_inputs(input_path, saved.info)
    classes, probs = predict_saved(saved, inputs.x, inputs.features)
    fmt = "json" if out is not None and str(out).lower().endswith(".json") else "csv"
    text = format_predictions(classes, probs, saved.class_names, inputs.ids, fmt)
    note = f"{len(classes)} predictions"
    if inputs.labels is not None and len(inputs.labels) == len(classes):
        acc = float((probs.argmax(axis=1) == inputs.labels).mean())
        note += f"; accuracy against the labels in {Path(input_path).name}: {acc:.4f}"
    return text, note

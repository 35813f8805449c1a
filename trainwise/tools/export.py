"""Export a finished run's model to TorchScript or ONNX, and check the export against PyTorch.

The exported model takes raw inputs, like ``trainwise predict``: the training split's normalization
(from ``preprocess.json``) is part of the graph. It returns logits, shaped (N, classes), or (N, 1) for
a binary task (probability = sigmoid). The batch dimension is dynamic. An ONNX export is one
self-contained file, weights inside; only a model over about 1.8 GB (protobuf's 2 GiB limit) keeps its
weights beside it in ``model.onnx.data``, and then both files are named.

After writing the file, the export is loaded back (``torch.jit.load``; ONNX Runtime for ONNX) and run
on two batches of inputs spread like the training data (sizes 16 and 3); its outputs must match the
PyTorch model's within ``atol + rtol * |output|``. The largest difference is returned and printed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainwise.errors import UserError
from trainwise.optional import require
from trainwise.rundir import EXPORTED
from trainwise.saved_model import SavedRun, load_saved

FORMATS = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
CHECK_BATCHES = (16, 3)


# Protobuf caps one file at 2 GiB: below this, the weights go inside model.onnx (one file to deploy).
ONNX_SINGLE_FILE_BYTES = 1_800_000_000


@dataclass
class Exported:
    path: Path
    format: str
    max_abs_diff: float  # largest |exported - PyTorch| over the check batches
    checked_with: str  # what ran the exported file
    files: list[Path] = field(default_factory=list)  # every file written: path, and for a model over 2 GiB its weights file

    def describe(self) -> str:
        """The files to deploy, e.g. 'model.onnx' or 'model.onnx and model.onnx.data (keep them side by side)'."""
        if len(self.files) <= 1:
            return str(self.path)
        return " and ".join(str(f) for f in self.files) + " (keep them in one directory)"


def example_inputs(saved: SavedRun, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Raw inputs whose normalized values are standard normal, i.e. spread like the training data."""
    g = torch.Generator().manual_seed(seed + n)
    m = saved.model
    x = torch.randn((n, *saved.input_shape), generator=g) * m.input_std + m.input_mean
    if not m.has_features:
        return (x,)
    f = torch.randn((n, saved.info["feature_dim"]), generator=g) * m.features_std + m.features_mean
    return (x, f)


@contextlib.contextmanager
def _quiet():
    """The exporters warn about deprecations and unused torchvision ops, and print progress; none of it is ours."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def _torchscript(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path):
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, inputs)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))

    def run(*args: torch.Tensor) -> np.ndarray:
        with _quiet(), torch.no_grad():
            return loaded(*args).numpy()

    return run, f"torch.jit.load (torch {torch.__version__})", [path]


def _onnx(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path):
    require("onnxscript", "export to ONNX", install="onnx onnxscript onnxruntime")  # the exporter is built on onnxscript
    ort = require("onnxruntime", "checking the ONNX export", install="onnx onnxscript onnxruntime")
    batch = torch.export.Dim("batch")
    names = ["input", "features"][: len(inputs)]
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    external = size > ONNX_SINGLE_FILE_BYTES
    data_file = path.with_name(path.name + ".data")
    data_file.unlink(missing_ok=True)  # a weights file left by an earlier export would look like part of this one
    with _quiet():
        torch.onnx.export(model, inputs, str(path), dynamo=True, input_names=names, output_names=["logits"],
                          dynamic_shapes=tuple({0: batch} for _ in inputs), verbose=False, external_data=external)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(*args: torch.Tensor) -> np.ndarray:
        return session.run(None, {name: a.numpy() for name, a in zip(names, args)})[0]

    return run, f"ONNX Runtime {ort.__version__}", [path, data_file] if external else [path]


def export(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, *, weights: str = "final",
           model: nn.Module | None = None, rtol: float = 1e-3, atol: float = 1e-4) -> Exported:
    """Write the run's model as TorchScript or ONNX (default ``RUN/exported/model.<ext>``) and check it."""
    if format not in FORMATS:
        raise UserError("unknown export format", expected=" | ".join(FORMATS), received=format)
    saved = load_saved(run_dir, weights, model)
    path = Path(out) if out else saved.run_dir / EXPORTED / FORMATS[format]
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter = _torchscript if format == "torchscript" else _onnx
    try:
        run, checked_with, files = exporter(saved.model, example_inputs(saved, CHECK_BATCHES[0]), path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - an exporter failure is reported in one line, with the way out
        raise UserError(f"{format} export of {saved.config.model.name!r} failed", received=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
                        fix="try the other format, or export your module with torch.export yourself") from None
    worst = 0.0
    for n in CHECK_BATCHES:
        inputs = example_inputs(saved, n)
        with torch.no_grad():
            expected = saved.model(*inputs).numpy()
        got = run(*inputs)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
            diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
            raise UserError(f"the {format} export does not reproduce the model", expected=f"outputs within atol {atol} + rtol {rtol}",
                            received=f"shape {got.shape} vs {expected.shape}, largest difference {diff:.3g} on a batch of {n}",
                            fix="use the other format; the file was written to " + str(path))
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return Exported(path, format, worst, checked_with, files)

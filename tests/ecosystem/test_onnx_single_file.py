"""An ONNX export is one file to deploy: loaded alone, from another directory, it gives the same logits."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import trainwise
from tests.helpers import run_cli
from trainwise.tools import export as export_module

from trainwise.config import load_config
from trainwise.data import prepare_data

for package in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(package, reason=f"{package} is not installed (pip install {package})")


@pytest.fixture(scope="module")
def raw_test(digits_run):
    """The run's test split as the data source gives it, before normalization."""
    test = prepare_data(load_config(digits_run / "config.toml", {"data.normalize": False}).data).test
    return test.inputs[0].numpy(), test.targets.numpy()


def test_the_onnx_file_alone_runs_elsewhere(digits_run, raw_test, tmp_path):
    import onnxruntime

    out = tmp_path / "export" / "model.onnx"
    done = run_cli("export", str(digits_run), "--format", "onnx", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out} (onnx);") and " and " not in done.stdout.split(";")[0]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]  # no model.onnx.data beside it
    deployed = tmp_path / "elsewhere"
    deployed.mkdir()
    shutil.move(str(out), deployed / "model.onnx")  # the export directory is gone: only this file travels
    shutil.rmtree(out.parent)
    session = onnxruntime.InferenceSession(str(deployed / "model.onnx"), providers=["CPUExecutionProvider"])
    x, _ = raw_test
    logits = session.run(None, {"input": x})[0]
    _, probs = trainwise.predict(digits_run, x)
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs, atol=1e-5)


def test_a_model_too_large_for_one_file_names_both_files(digits_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ONNX_SINGLE_FILE_BYTES", 0)  # as if the weights were over protobuf's 2 GiB
    done = trainwise.export(digits_run, "onnx", tmp_path / "model.onnx")
    assert done.files == [tmp_path / "model.onnx", tmp_path / "model.onnx.data"] and all(f.is_file() for f in done.files)
    assert "model.onnx and " in done.describe() and "model.onnx.data" in done.describe()

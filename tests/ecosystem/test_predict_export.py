"""Using a finished run: predict on new data (arrays and files), export to TorchScript and ONNX."""

from __future__ import annotations

import csv
import gzip
import json
import struct

import numpy as np
import pytest
import torch

import trainwise
from tests.ecosystem.eco_helpers import QUIET, invoke
from tests.helpers import run_cli
from trainwise.config import load_config
from trainwise.data import prepare_data
from trainwise.errors import UserError


@pytest.fixture(scope="module")
def raw_test(digits_run):
    """The run's test split as the data source gives it, before normalization."""
    cfg = load_config(digits_run / "config.toml", {"data.normalize": False})
    test = prepare_data(cfg.data).test
    return test.inputs[0].numpy(), test.targets.numpy()


def test_preprocess_json_records_what_the_model_expects(digits_run):
    info = json.loads((digits_run / "preprocess.json").read_text())
    assert info["input_shape"] == [1, 8, 8] and info["task"] == "multiclass" and info["num_classes"] == 10
    assert info["class_names"] == [str(i) for i in range(10)]
    stats = info["normalization"]["input"]
    assert 0.25 < stats["mean"] < 0.35 and 0.3 < stats["std"] < 0.45  # digits pixels / 16, training split only


def test_predict_on_raw_test_data_matches_evaluate(digits_run, raw_test):
    x, y = raw_test
    classes, probs = trainwise.predict(digits_run, x)
    assert probs.shape == (len(y), 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert classes == [str(i) for i in probs.argmax(axis=1)]
    accuracy = np.mean(np.array(classes, dtype=int) == y)
    assert accuracy == trainwise.evaluate(digits_run, split="test")["acc"]
    flat_classes, _ = trainwise.predict(digits_run, torch.from_numpy(x.reshape(len(x), -1)))  # rows of 64 values
    assert flat_classes == classes
    one, _ = trainwise.predict(digits_run, x[0, 0][None])  # a single (1, 8, 8) sample
    assert one == classes[:1]


def test_predict_files_npz_csv_idx_pt(digits_run, raw_test, tmp_path):
    x, y = raw_test
    expected, _ = trainwise.predict(digits_run, x)
    np.savez(tmp_path / "new.npz", x=x, y=y)
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *(f"px{i}" for i in range(64)), "y"])
        writer.writerows([f"s{i}", *row, label] for i, (row, label) in enumerate(zip(x.reshape(len(x), -1).tolist(), y.tolist())))
    torch.save(torch.from_numpy(x), tmp_path / "new.pt")
    for name in ("new.npz", "new.csv", "new.pt"):
        assert trainwise.predict(digits_run, tmp_path / name)[0] == expected, name

    # IDX holds unsigned bytes, read as value / 255.
    pixels = np.round(x[:, 0] * 255).astype(np.uint8)
    with gzip.open(tmp_path / "new-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", *pixels.shape) + pixels.tobytes())
    from_idx, _ = trainwise.predict(digits_run, tmp_path / "new-images-idx3-ubyte.gz")
    assert from_idx == trainwise.predict(digits_run, pixels.astype(np.float32) / 255)[0]

    proc = run_cli("predict", str(digits_run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "out.csv"))
    assert proc.returncode == 0, proc.stderr
    accuracy = np.mean(np.array(expected, dtype=int) == y)
    assert f"{len(y)} predictions; accuracy against the labels in new.csv: {accuracy:.4f}" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert list(rows[0]) == ["id", "class", *(f"p_{i}" for i in range(10))]
    assert [r["id"] for r in rows[:2]] == ["s0", "s1"] and [r["class"] for r in rows] == expected

    result = invoke("predict", str(digits_run), str(tmp_path / "new.npz"), "--out", str(tmp_path / "out.json"))
    assert result.exit_code == 0, result.stderr
    records = json.loads((tmp_path / "out.json").read_text())
    assert [r["class"] for r in records] == expected
    assert sum(records[0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_predict_mistakes_are_one_line(digits_run, tmp_path):
    with pytest.raises(UserError, match=r"expected samples shaped \(1, 8, 8\) \(or rows of 64 values\)"):
        trainwise.predict(digits_run, np.zeros((3, 10)))
    with pytest.raises(UserError, match="NaN or Inf.*sample 1"):
        trainwise.predict(digits_run, np.stack([np.zeros(64), np.full(64, np.nan)]))
    (tmp_path / "data.txt").write_text("1 2 3")
    result = invoke("predict", str(digits_run), str(tmp_path / "data.txt"))
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown input format '.txt'")


def test_runs_of_your_own_module_need_it_to_predict(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.arange(64) % 3
    net = torch.nn.Sequential(torch.nn.Linear(5, 3))
    trainwise.fit(model=net, train=(x, y), val=(x, y), test=(x, y), train__epochs=1, out=tmp_path / "own", **QUIET)
    with pytest.raises(UserError, match="pass it: trainwise.predict"):
        trainwise.predict(tmp_path / "own", x)
    classes, _ = trainwise.predict(tmp_path / "own", x, model=torch.nn.Sequential(torch.nn.Linear(5, 3)))
    # data.normalize (on by default) applies to tensors too: the run keeps the training statistics and predict applies them
    normalized = (x - x.mean(0)) / x.std(0, unbiased=False)
    assert classes == [str(i) for i in net(normalized).argmax(1).tolist()]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load: TorchScript is deprecated in torch
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_the_model(digits_run, raw_test, tmp_path, fmt):
    if fmt == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package, reason=f"{package} is not installed (pip install {package})")
    out = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    result = invoke("export", str(digits_run), "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} ({fmt}); largest difference from PyTorch on check batches:")

    # Independently of the built-in check: the exported file, on the raw test split, agrees with predict.
    x, _ = raw_test
    _, probs = trainwise.predict(digits_run, x)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        logits = session.run(None, {"input": x})[0]
    else:
        logits = torch.jit.load(str(out))(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), probs, atol=1e-5)


def test_export_api_and_bad_format(digits_run, tmp_path):
    done = trainwise.export(digits_run, "torchscript", tmp_path / "m.pt", weights="best")
    assert done.path.is_file() and done.max_abs_diff < 1e-4
    with pytest.raises(UserError, match="expected torchscript | onnx"):
        trainwise.export(digits_run, "tflite")

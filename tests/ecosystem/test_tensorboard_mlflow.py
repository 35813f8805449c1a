"""Loggers: TensorBoard event files read back, MLflow against a real tracking server."""

from __future__ import annotations

import sys
import urllib.parse

import pytest

import trainwise
from trainwise import Callback, State
from trainwise.errors import UserError
from trainwise.optional import require

from tests.ecosystem.eco_helpers import QUIET, free_port


class FakeMonitorsAndDoctor(Callback):
    """Stands in for the monitor and doctor callbacks: per-layer values in the record, files in the run dir."""

    order = 50

    def on_eval_end(self, state: State) -> None:
        for i, (name, p) in enumerate(state.model.named_parameters()):
            state.record[f"grad_norm/{name}"] = 0.1 * (i + 1) * state.epoch

    def on_epoch_end(self, state: State) -> None:
        (state.run_dir / "findings.json").write_text('[{"code": "overfitting", "severity": "warning"}]')
        (state.run_dir / "report.html").write_text("<html><body>report</body></html>")


class InterruptAt(Callback):
    order = 100  # after the loggers: the epoch is logged, the checkpoint is not written

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, state: State) -> None:
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_tensorboard_event_files_read_back(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = trainwise.fit(train__epochs=2, logging__tensorboard=True, logging__every_n_steps=5, callbacks=[FakeMonitorsAndDoctor()],
                        monitors__enabled=False,  # the stand-in above provides the per-layer values
                        out=tmp_path / "run", **QUIET)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    steps = [r["step"] for r in run.history]
    for key in ("train_loss", "val_loss", "val_acc", "lr", "epoch"):
        assert [e.step for e in events.Scalars(key)] == steps
        assert [e.value for e in events.Scalars(key)] == pytest.approx([r[key] for r in run.history])
    assert [e.step for e in events.Scalars("step/train_loss")] == list(range(5, steps[-1] + 1, 5))
    assert len(events.Scalars("step/lr")) == len(events.Scalars("step/train_loss"))
    first_layer = next(iter(run.model.state_dict()))
    assert [e.value for e in events.Scalars(f"grad_norm/{first_layer}")] == pytest.approx([0.1, 0.2])
    histograms = events.Histograms("grad_norm_per_layer")
    assert [h.step for h in histograms] == steps
    assert histograms[0].histogram_value.num == len(list(run.model.parameters()))
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "[logging]" in config_text and "tensorboard = true" in config_text


def test_tensorboard_needs_a_directory_and_the_package(monkeypatch):
    with pytest.raises(UserError, match="logging.tensorboard_dir"):
        trainwise.fit(train__epochs=1, logging__tensorboard=True, **QUIET)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(UserError, match="pip install tensorboard"):
        trainwise.fit(train__epochs=1, logging__tensorboard=True, logging__tensorboard_dir="unused", **QUIET)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match="pip install onnxruntime"):
        require("onnxruntime", "checking the ONNX export")


def test_evaluate_does_not_need_the_loggers(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    trainwise.fit(train__epochs=1, logging__tensorboard=True, out=tmp_path / "run", **QUIET)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert 0 < trainwise.evaluate(tmp_path / "run")["acc"] <= 1


def test_mlflow_params_metrics_artifacts_and_resume(tmp_path, mlflow_server, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the URI comes from the environment here
    out = tmp_path / "digits-mlflow"
    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(train__epochs=3, logging__mlflow=True, logging__mlflow_experiment="eco-test",
                      callbacks=[FakeMonitorsAndDoctor(), InterruptAt(2)], out=out, **QUIET)
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("eco-test")
    (killed,) = client.search_runs([experiment.experiment_id])
    assert killed.info.status == "KILLED" and killed.info.run_name == "digits-mlflow"

    run = trainwise.resume(out)  # logs into the same MLflow run
    (logged,) = client.search_runs([experiment.experiment_id])
    run_id = logged.info.run_id
    assert run_id == killed.info.run_id and logged.info.status == "FINISHED"
    assert logged.data.params["optim.lr"] == "0.001" and logged.data.params["logging.mlflow"] == "True"
    assert logged.data.params["model.hidden"] == "[128, 64]"
    val_acc = {m.step: m.value for m in client.get_metric_history(run_id, "val_acc")}
    assert val_acc == pytest.approx({r["epoch"]: r["val_acc"] for r in run.history})
    assert f"grad_norm/{next(iter(run.model.state_dict()))}" in logged.data.metrics
    names = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert {"config.toml", "preprocess.json", "history.jsonl", "report.html", "findings.json", "checkpoints/best.safetensors"} <= names
    local = client.download_artifacts(run_id, "checkpoints/best.safetensors", str(tmp_path / "download"))
    assert open(local, "rb").read() == (out / "checkpoints" / "best.safetensors").read_bytes()


def test_mlflow_unreachable_server_is_one_line():
    pytest.importorskip("mlflow")
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UserError, match="cannot reach the MLflow tracking server") as err:
        trainwise.fit(train__epochs=1, logging__mlflow=True, logging__mlflow_tracking_uri=uri, **QUIET)
    assert urllib.parse.urlparse(uri).netloc in str(err.value)

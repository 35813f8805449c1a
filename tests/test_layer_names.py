"""Layers are named by module path (``hidden1.linear``, ``stage2.0.conv1``); runs saved with the old numbered
names (tests/data/legacy_layout, written by trainwise before the rename: flat nn.Sequential keys ``1.weight``,
resnet's ``blocks.<i>``) still evaluate, predict (as the numbered network itself would), resume and fine-tune, and old
finetune patterns mean the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits

import trainwise
from tests.helpers import report_figures, run_cli
from trainwise.config import Config, ModelConfig
from trainwise.models import build_model
from trainwise.models.names import legacy_aliases, upgrade_keys
from trainwise.saved_model import Preprocessed, load_saved

LEGACY = Path(__file__).parent / "data" / "legacy_layout"
QUIET = {"train.progress": "none", "train.threads": 1, "train.report": False}


@pytest.fixture
def old_run(tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(LEGACY / name, tmp_path / name))
    return copy


@pytest.mark.parametrize("name", ["mlp", "resnet", "cnn"])
def test_an_old_run_evaluates_to_its_recorded_test_scores(old_run, name):
    run = old_run(name)
    recorded = json.loads((run / "summary.json").read_text())["test"]
    scores = trainwise.evaluate(run)
    assert scores["loss"] == pytest.approx(recorded["loss"], rel=1e-6) and scores["acc"] == recorded["acc"]
    old = load_file(run / "checkpoints" / "final.safetensors")
    assert all(k[0].isdigit() or k.startswith(("blocks.", "stem.", "head.")) for k in old)  # the old layout indeed
    model = build_model(trainwise.load_config(run / "config.toml").model, (1, 8, 8), 0, 10)
    model.load_state_dict(old)  # strict: every old key found its new place
    assert not any(k[0].isdigit() or k.startswith("blocks.") for k in model.state_dict())


def test_an_old_run_predicts_as_the_numbered_network_that_wrote_it(old_run):
    run = old_run("mlp")  # hidden [16], batch norm, dropout 0.1: once a flat nn.Sequential
    nn = torch.nn
    numbered = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 10))
    numbered.load_state_dict(load_file(run / "checkpoints" / "final.safetensors"))  # strict: the old keys as written
    saved = load_saved(run)
    reference = Preprocessed(numbered, saved.info).eval()
    x = torch.as_tensor(load_digits().images[:200], dtype=torch.float32).reshape(-1, 1, 8, 8)
    with torch.no_grad():
        expected = torch.softmax(reference(x), dim=1).numpy()
        normalized = (x - saved.model.input_mean) / saved.model.input_std
        assert torch.equal(trainwise.Trainer.from_run(run).model.cpu().eval()(normalized), numbered(normalized))
    classes, probs = trainwise.predict(run, x.numpy())
    assert np.array_equal(probs, expected) and classes == [str(i) for i in expected.argmax(1)]


def test_an_old_run_resumes_as_the_version_that_wrote_it_would(old_run):
    run = old_run("mlp")  # EMA and SWA on: their checkpointed copies carry the old names too
    expected = json.loads((LEGACY / "mlp_resumed_by_writer.json").read_text())
    resumed = trainwise.resume(run, epochs=3)
    last = resumed.history.records[-1]
    # The writer's figures were recorded on another CPU: vectorised kernels differ in the last bits, which moves
    # losses by ~1e-4 and can flip one near-tied prediction of this near-chance model. Weights loaded under the
    # wrong names (or not at all) move the losses by several hundredths, so 1e-3 still tells them apart.
    for key, value in {**expected["epoch3"], **{f"test_{k}": v for k, v in expected["test"].items()}}.items():
        got = resumed.summary["test"][key[5:]] if key.startswith("test_") else last[key]
        if "acc" in key:
            assert got == pytest.approx(value, abs=0.015), key  # at most two of the 144 validation images
        else:
            assert got == pytest.approx(value, rel=1e-3), key
    assert resumed.summary["swa"]["epochs_averaged"] == expected["swa"]["epochs_averaged"]


def test_finetune_patterns_and_weights_of_the_old_layout(old_run, tmp_path):
    run = old_run("mlp")
    old = load_file(run / "checkpoints" / "final.safetensors")
    settings = {**QUIET, "model.hidden": [16], "model.batch_norm": True, "model.dropout": 0.1, "train.epochs": 1,
                "data.train_subset": 300, "finetune.init_from": str(run)}
    frozen = {}
    for pattern in ("1.*", "hidden1.linear.*"):  # the old numbered name and the new path of the first linear layer
        ft = trainwise.fit(Config().replace({**settings, "finetune.freeze": [pattern]}), out=tmp_path / pattern)
        frozen[pattern] = ft.model.hidden1.linear.weight.detach()
        assert torch.equal(frozen[pattern], old["1.weight"])  # loaded from the old name, then kept frozen
        assert not torch.equal(ft.model.hidden1.norm.weight.detach(), old["2.weight"])  # the rest trained
        loaded = set(ft.summary["finetune"]["loaded"])
        assert "hidden1.linear.weight" in loaded and "head.weight" not in loaded  # a new head, as configured
    # a weights file named the old way also loads through model.weights
    path = run / "checkpoints" / "final.safetensors"
    model = build_model(ModelConfig(hidden=[16], batch_norm=True, dropout=0.1, weights=str(path)), (8, 8), 0, 10)
    assert torch.equal(model.head.weight, old["5.weight"]) and torch.equal(model.hidden1.norm.running_var, old["2.running_var"])


def test_new_runs_record_layers_by_module_path(tmp_path):
    cfg = Config().replace({**QUIET, "model.hidden": [32, 16], "train.epochs": 1, "monitors.every_n_steps": 1})
    run = trainwise.fit(cfg, out=tmp_path / "r")
    record = run.history.records[0]
    for prefix in ("grad_norm", "update_ratio", "dead_frac"):
        layers = [k.split("/", 1)[1] for k in record if k.startswith(prefix + "/")]
        expected = ["hidden1.linear", "hidden2.linear"] + (["head"] if prefix != "dead_frac" else [])
        assert layers == expected, (prefix, layers)
    saved = load_file(tmp_path / "r" / "checkpoints" / "final.safetensors")
    assert {"hidden1.linear.weight", "hidden2.linear.bias", "head.weight"} <= set(saved) and not any(k[0].isdigit() for k in saved)


def test_a_resnet_run_names_its_layers_by_module_path_in_the_history_and_the_report(tmp_path):
    cfg = Config().replace({"train.progress": "none", "train.threads": 1, "model.name": "resnet", "model.channels": [8, 16],
                            "model.blocks_per_stage": 1, "train.epochs": 1, "monitors.every_n_steps": 1})
    run = trainwise.fit(cfg, out=tmp_path / "r")
    layers = [k.split("/", 1)[1] for k in run.history.records[0] if k.startswith("grad_norm/")]
    assert layers == ["stem.conv", "stem.norm", "stage1.0.conv1", "stage1.0.bn1", "stage1.0.conv2", "stage1.0.bn2", "stage2.0.conv1",
                      "stage2.0.bn1", "stage2.0.conv2", "stage2.0.bn2", "stage2.0.shortcut.conv", "stage2.0.shortcut.norm", "head"]
    plots = report_figures((tmp_path / "r" / "report.html").read_text())
    assert [s["name"] for s in plots["Gradient norm per layer"][0]["series"]] == layers  # the hover readout names them so too
    assert "stage2.0.shortcut.conv" in [s["name"] for s in plots["Update-to-weight ratio per layer"][0]["series"]]


def test_resnet_blocks_are_named_by_stage_and_user_models_keep_their_names():
    model = build_model(ModelConfig(name="resnet", channels=[4, 8], blocks_per_stage=2), (1, 8, 8), 0, 3)
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "stem.conv.weight" and "stage2.0.conv1.weight" in names and "stage2.0.shortcut.conv.weight" in names
    assert names[-2:] == ["head.weight", "head.bias"]
    assert legacy_aliases(model)["stage2.1.conv2.weight"] == "blocks.3.conv2.weight"
    assert legacy_aliases(model)["head.weight"] == "head.3.weight"
    assert legacy_aliases(model)["stage2.0.shortcut.norm.bias"] == "blocks.2.shortcut.1.bias"  # two renames: block, then its shortcut
    between = {k.replace("shortcut.conv", "shortcut.0").replace("shortcut.norm", "shortcut.1"): v for k, v in model.state_dict().items()}
    again = build_model(ModelConfig(name="resnet", channels=[4, 8], blocks_per_stage=2), (1, 8, 8), 0, 3)
    again.load_state_dict(between)  # strict: a run saved with numbered shortcuts (stage2.0.shortcut.0) loads too
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    user = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    assert legacy_aliases(user) == {} and list(upgrade_keys(user, user.state_dict())) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_cli_evaluate_of_an_old_run(old_run):
    run = old_run("cnn")
    proc = run_cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr


def test_an_old_run_killed_mid_epoch_resumes_with_its_monitor_sums_renamed(old_run):
    run = old_run("mlp_midepoch")  # monitors every step; its checkpoint (step 12) holds epoch 2's partial sums as grad_norm/1 ...
    expected = json.loads((LEGACY / "mlp_midepoch_resumed_by_writer.json").read_text())["epoch2"]
    old_layout = {"1": "hidden1.linear", "3": "head"}  # MLP [16] as a flat nn.Sequential: flatten, linear, relu, linear
    renamed = {(k.split("/")[0] + "/" + old_layout[k.split("/")[1]] if "/" in k else k): v for k, v in expected.items()}
    last = trainwise.resume(run).history.records[-1]
    assert {k: last.get(k) for k in renamed} == pytest.approx(renamed, rel=1e-6)
    assert not any(k.split("/")[-1][0].isdigit() for k in last if "/" in k)  # no old name left in the record

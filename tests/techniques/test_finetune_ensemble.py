"""Fine-tuning from a trainwise run, ensembles of run directories, and the ensemble command."""

import json

import pytest
import torch

import trainwise
from tests.helpers import run_cli
from tests.techniques.probe import Probe
from trainwise.checkpointing import load_weights
from trainwise.errors import UserError
from trainwise.tools.ensemble import evaluate_ensemble
from trainwise.trainer import Trainer


@pytest.fixture
def pretrained(cnn_config, tmp_path):
    cfg = cnn_config(**{"data.classes": [0, 1, 2, 3, 4], "model.batch_norm": True})
    trainwise.fit(cfg, out=tmp_path / "pre")
    return tmp_path / "pre"


def test_finetune_head_first_then_everything(cnn_config, pretrained, capsys):
    cfg = cnn_config(**{"data.classes": [5, 6, 7, 8, 9], "model.batch_norm": True, "train.epochs": 3,
                        "finetune.init_from": str(pretrained), "finetune.freeze": ["*"], "finetune.unfreeze_epoch": 3,
                        "finetune.head_lr_mult": 5.0})
    donor = load_weights(pretrained / "checkpoints" / "final.safetensors")
    frozen_after = {}

    def snapshot(state):
        frozen_after[state.epoch] = {k: v.clone() for k, v in state.model.state_dict().items()}

    trainer = Trainer(cfg, callbacks=[Probe("epoch_end", snapshot)])
    assert sorted({g["lr"] for g in trainer.optimizer.param_groups}) == [pytest.approx(2e-2), pytest.approx(0.1)]
    run = trainer.fit()
    report = run.summary["finetune"]
    assert set(report["skipped"]) == {"head.weight", "head.bias"}  # the head: new classes (5 again, so shapes alone would not tell)
    assert "loaded 12 tensors" in capsys.readouterr().err
    body = [k for k in donor if not k.startswith("head.")]
    assert all(torch.equal(frozen_after[2][k], donor[k]) for k in body)  # weights and BN statistics kept
    assert not torch.equal(frozen_after[2]["head.weight"], frozen_after[1]["head.weight"])
    assert not torch.equal(frozen_after[3]["stage1.conv.weight"], donor["stage1.conv.weight"])  # unfrozen at epoch 3
    assert [r["phase"] for r in run.history] == ["frozen", "frozen", "unfrozen"]
    assert run.summary["test"]["acc"] > 0.6


def test_finetune_errors(cnn_config, tmp_path, pretrained):
    with pytest.raises(UserError, match="no pretrained weights"):
        trainwise.fit(cnn_config(**{"finetune.init_from": str(tmp_path / "nothing")}))
    with pytest.raises(UserError, match="fits the model"):
        trainwise.fit(cnn_config(**{"model.name": "mlp", "finetune.init_from": str(pretrained)}))


def test_ensemble_averages_member_probabilities(cnn_config, tmp_path):
    runs = []
    for seed in (0, 1):
        trainwise.fit(cnn_config(**{"train.seed": seed}), out=tmp_path / f"s{seed}")
        runs.append(tmp_path / f"s{seed}")
    result = evaluate_ensemble(runs, split="test")
    members = [trainwise.evaluate(r, split="test")["acc"] for r in runs]
    assert [m["acc"] for m in result["members"]] == pytest.approx(members)
    probs = []
    for r in runs:
        trainer = Trainer(trainwise.load_config(r / "config.toml"))
        trainer.model.load_state_dict(load_weights(r / "checkpoints" / "final.safetensors"))
        trainer.model.eval()
        with torch.no_grad():
            probs.append(trainer.model(trainer.data.test.inputs[0]).softmax(1))
    expected = ((probs[0] + probs[1]) / 2).argmax(1).eq(trainer.data.test.targets).double().mean().item()
    assert result["acc"] == pytest.approx(expected)

    proc = run_cli("ensemble", str(runs[0]), str(runs[1]), "--split", "val", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 0 < out["acc"] <= 1 and len(out["members"]) == 2
    trainwise.fit(cnn_config(**{"data.split_seed": 3}), out=tmp_path / "other")
    with pytest.raises(UserError, match="different data configs"):
        evaluate_ensemble([runs[0], tmp_path / "other"])

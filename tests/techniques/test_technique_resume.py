"""Resume exactness with every technique on at once (the pattern of tests/test_resume.py)."""

import pytest
import torch

import trainwise
from tests.helpers import interrupted_then_resumed, same_weights, without_times
from tests.techniques.probe import Probe

EVERY_OP = [{"op": "hflip", "p": 0.5}, {"op": "translate", "pad": 1}, {"op": "rotate", "p": 0.5, "degrees": 15},
            {"op": "brightness", "p": 0.5}, {"op": "contrast", "p": 0.5}, {"op": "gaussian_blur", "p": 0.3},
            {"op": "motion_blur", "p": 0.3, "length": 3}, {"op": "erase", "p": 0.5, "holes": 2, "size": [0.1, 0.3]}]


def everything(cnn_config, pretrained, model, **extra):
    return cnn_config(**{
        "model.name": model, "model.dropout": 0.1, "model.drop_path": 0.1, "model.batch_norm": True, "train.epochs": 4,
        "augment.train": EVERY_OP, "augment.test": [{"op": "gaussian_blur", "p": 0.5}],
        "mixup.mixup_alpha": 0.4, "mixup.cutmix_alpha": 1.0, "mixup.prob": 0.8,
        "regularization.label_smoothing": 0.1, "regularization.l1": 1e-5, "regularization.l2": 1e-4,
        "optim.weight_decay": 1e-3, "schedule.name": "cosine", "schedule.warmup_epochs": 1,
        "ema.enabled": True, "ema.decay": 0.9, "init.scheme": "he_normal", "evaluation.tta_flip": True,
        "progressive.phases": [{"epoch": 1, "resolution": 6}, {"epoch": 3, "augment": False}],
        "finetune.init_from": str(pretrained), "finetune.freeze": ["*"], "finetune.unfreeze_epoch": 2,
        "finetune.layer_decay": 0.7, "finetune.head_lr_mult": 2.0, "early_stopping.enabled": True,
        "early_stopping.patience": 50, **extra})


@pytest.mark.parametrize("model", ["cnn", "resnet"])
@pytest.mark.filterwarnings("ignore:progressive phase")
def test_resume_equals_uninterrupted_with_every_technique(cnn_config, tmp_path, model):
    base = {"model.name": model, "model.batch_norm": True, "model.dropout": 0.1, "train.epochs": 1}
    trainwise.fit(cnn_config(**base), out=tmp_path / "pre")
    cfg = everything(cnn_config, tmp_path / "pre", model)
    straight = trainwise.fit(cfg, out=tmp_path / "a")
    resumed = interrupted_then_resumed(cfg, tmp_path / "b", epoch=2)
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)
    assert {"val_acc_ema", "phase"} <= set(straight.history[-1])
    assert [r["phase"] for r in straight.history] == ["frozen|res6+aug", "unfrozen|res6+aug", "unfrozen|resfull-noaug",
                                                      "unfrozen|resfull-noaug"]
    assert straight.summary["test"] == resumed.summary["test"]


@pytest.mark.filterwarnings("ignore:progressive phase")
def test_mid_epoch_resume_with_every_technique(cnn_config, tmp_path):
    trainwise.fit(cnn_config(**{"model.batch_norm": True, "model.dropout": 0.1, "train.epochs": 1}), out=tmp_path / "pre")
    cfg = everything(cnn_config, tmp_path / "pre", "cnn", **{"train.epochs": 2, "checkpoint.every_n_steps": 5})
    straight = trainwise.fit(cfg, out=tmp_path / "a")

    def stop_mid_epoch(state):
        if state.step == 28:  # after the checkpoint at step 25, inside epoch 2 (21 steps per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainwise.fit(cfg, out=tmp_path / "b", callbacks=[Probe("step_end", stop_mid_epoch)])
    resumed_from = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert (resumed_from["step"], resumed_from["epoch_done"]) == (25, False)
    resumed = trainwise.resume(tmp_path / "b")
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)

"""Each technique callback in a short real run."""

import pytest
import torch

import trainwise
from tests.helpers import same_weights
from tests.techniques.probe import Probe
from trainwise.checkpointing import load_weights
from trainwise.trainer import Trainer


def test_augmentation_changes_training_batches_only(cnn_config):
    seen = {}
    before = Probe("batch_start", lambda s: seen.__setitem__("raw", s.inputs[0].clone()), order=0)
    after = Probe("batch_start", lambda s: seen.setdefault("pairs", []).append((seen["raw"], s.inputs[0].clone())))
    cfg = cnn_config(**{"augment.train": [{"op": "hflip", "p": 1.0}], "train.epochs": 1})
    trainwise.fit(cfg, callbacks=[before, after])
    assert all(torch.equal(aug, raw.flip(-1)) for raw, aug in seen["pairs"])


def test_test_pipeline_is_deterministic_and_applies_at_evaluation(cnn_config):
    cfg = cnn_config(**{"augment.test": [{"op": "erase", "p": 1.0, "size": [0.6, 0.6]}]})
    trainer = Trainer(cfg)
    trainer.fit()
    corrupted = trainer.evaluate("val")
    assert trainer.evaluate("val")["loss"] == corrupted["loss"]  # the same draws every evaluation
    trainer.state.eval_transforms = []
    assert trainer.evaluate("val")["loss"] != corrupted["loss"]


@pytest.mark.parametrize("mix", [{"mixup.mixup_alpha": 0.4}, {"mixup.cutmix_alpha": 1.0},
                                 {"mixup.mixup_alpha": 0.4, "mixup.cutmix_alpha": 1.0, "switch_prob": 0.5}])
def test_mixup_and_cutmix_give_soft_targets(cnn_config, mix):
    mix = {k if k.startswith("mixup.") else f"mixup.{k}": v for k, v in mix.items()}
    targets = []
    probe = Probe("batch_start", lambda s: targets.append(s.targets))
    run = trainwise.fit(cnn_config(**mix, **{"regularization.label_smoothing": 0.1}), callbacks=[probe])
    assert all(t.is_floating_point() and t.shape[1] == 10 for t in targets)
    assert torch.allclose(targets[0].sum(1), torch.ones(len(targets[0])))
    assert 0 < run.history[-1]["train_acc"] <= 1 and run.summary["test"]["acc"] > 0.5


def test_mixup_probability_zero_leaves_targets_alone(cnn_config):
    targets = []
    probe = Probe("batch_start", lambda s: targets.append(s.targets))
    trainwise.fit(cnn_config(**{"mixup.mixup_alpha": 0.4, "mixup.prob": 0.0, "train.epochs": 1}), callbacks=[probe])
    assert not any(t.is_floating_point() for t in targets)


def test_mixup_on_a_binary_task(quiet):
    run = trainwise.fit(data__name="breast_cancer", model__hidden=[16], train__epochs=2, mixup__mixup_alpha=0.4,
                        train__progress="none", train__threads=1)
    assert run.summary["task"] == "binary" and run.summary["test"]["acc"] > 0.6


def test_ema_is_validated_checkpointed_and_chosen(cnn_config, tmp_path):
    run = trainwise.fit(cnn_config(**{"ema.enabled": True, "ema.decay": 0.9, "train.epochs": 3}), out=tmp_path / "r")
    assert {"val_loss_ema", "val_acc_ema", "val_macro_f1_ema"} <= set(run.history[-1])
    assert run.summary["test_weights"] in ("ema", "raw") and run.summary["ema"]["monitor"] == "val_acc"
    ema = load_weights(tmp_path / "r" / "checkpoints" / "ema.safetensors")
    last = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert same_weights(last["callbacks"]["EMA"]["weights"], ema) and last["callbacks"]["EMA"]["updates"] == run.summary["steps"]
    final = load_weights(tmp_path / "r" / "checkpoints" / "final.safetensors")
    assert same_weights(final, ema) == (run.summary["test_weights"] == "ema")
    assert trainwise.evaluate(tmp_path / "r", split="val", weights="ema")["acc"] == pytest.approx(run.history[-1]["val_acc_ema"])


def test_ema_that_lags_far_behind_is_not_tested(cnn_config):
    # decay 0.99999 without warm-up keeps the EMA at the initial weights: the raw weights win.
    run = trainwise.fit(cnn_config(**{"ema.enabled": True, "ema.decay": 0.99999, "ema.warmup": False}))
    assert run.summary["test_weights"] == "raw"
    assert run.history[-1]["val_acc_ema"] < run.history[-1]["val_acc"]


def test_weight_penalty_is_added_to_the_loss(cnn_config):
    checks = []

    def check(state):
        weights = [p for p in state.model.parameters() if p.ndim >= 2]
        base = torch.nn.functional.cross_entropy(state.outputs, state.targets)
        expected = base + 1e-3 * sum(p.abs().sum() for p in weights) + 1e-2 * sum(p.pow(2).sum() for p in weights)
        checks.append(torch.allclose(state.loss, expected, rtol=1e-5))

    penalized = trainwise.fit(cnn_config(**{"regularization.l1": 1e-3, "regularization.l2": 1e-2}), callbacks=[Probe("after_loss", check)])
    plain = trainwise.fit(cnn_config())
    assert all(checks) and checks
    norm = lambda m: sum(p.pow(2).sum() for p in m.parameters() if p.ndim >= 2)  # noqa: E731
    assert norm(penalized.model) < norm(plain.model)


def test_progressive_phases_resize_label_and_warn(cnn_config):
    shapes = {}
    probe = Probe("batch_start", lambda s: shapes.setdefault(s.epoch, tuple(s.inputs[0].shape[-2:])))
    cfg = cnn_config(**{"train.epochs": 3, "augment.train": [{"op": "hflip"}],
                        "progressive.phases": [{"epoch": 1, "resolution": 4}, {"epoch": 2, "resolution": 6}, {"epoch": 3, "augment": False}]})
    with pytest.warns(UserWarning, match="epoch 3 turns training augmentation off"):
        run = trainwise.fit(cfg, callbacks=[probe])
    assert shapes == {1: (4, 4), 2: (6, 6), 3: (8, 8)}
    assert [r["phase"] for r in run.history] == ["res4+aug", "res6+aug", "resfull-noaug"]


def test_progressive_evaluation_at_phase_resolution(cnn_config):
    cfg = cnn_config(**{"train.epochs": 1, "progressive.phases": [{"epoch": 1, "resolution": 4}], "progressive.eval_resolution": "phase"})
    trainer = Trainer(cfg)
    seen = []
    trainer.model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])) if not m.training else None)
    trainer.fit()
    assert set(seen) == {(4, 4)}


def test_init_scheme_from_the_config_applies_to_any_model(cnn_config):
    trainer = Trainer(cnn_config(**{"init.scheme": "zeros"}))
    assert all(torch.count_nonzero(p) == 0 for n, p in trainer.model.named_parameters())
    mine = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    Trainer(cnn_config(**{"init.scheme": "zeros"}), model=mine)
    assert torch.count_nonzero(mine[1].weight) == 0


def test_flip_tta_at_evaluation(cnn_config):
    trainer = Trainer(cnn_config(**{"evaluation.tta_flip": True, "train.epochs": 1}))
    run = trainer.fit()
    x, y = trainer.data.val.inputs[0], trainer.data.val.targets
    with torch.no_grad():
        trainer.model.eval()
        prob = (trainer.model(x).softmax(1) + trainer.model(x.flip(-1)).softmax(1)) / 2
    assert trainer.evaluate("val")["acc"] == pytest.approx((prob.argmax(1) == y).double().mean().item())
    assert run.history[-1]["val_acc"] == pytest.approx(trainer.evaluate("val")["acc"])


def test_mixup_blends_an_extra_feature_vector_alike(quiet):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:600, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target[:600])
    features = torch.nn.functional.one_hot(y, 10).float()  # a feature vector that encodes the label
    pairs = []
    probe = Probe("batch_start", lambda s: pairs.append((s.inputs[1], s.targets)))
    trainwise.fit(train=(x, features, y), val=(x[:100], features[:100], y[:100]), model__name="fusion", model__channels=[8],
                  train__epochs=1, mixup__mixup_alpha=0.4, train__progress="none", data__normalize=False, callbacks=[probe])
    assert all(torch.allclose(f, t) for f, t in pairs)  # mixed features == mixed one-hot targets


def test_large_batch_linear_scaling_with_warmup(cnn_config):
    lrs = []
    probe = Probe("step_end", lambda s: lrs.append(s.optimizer.param_groups[0]["lr"]))
    cfg = cnn_config(**{"data.batch_size": 256, "optim.lr": 1e-3, "optim.base_batch_size": 64, "optim.scale_lr": "linear",
                        "schedule.name": "cosine", "schedule.warmup_epochs": 1, "schedule.warmup_start_factor": 0.1,
                        "train.epochs": 2})
    trainer = Trainer(cfg, callbacks=[probe])
    assert trainer.lr.base[0] == pytest.approx(4e-3)  # 1e-3 * 256 / 64
    trainer.fit()
    steps = trainer.state.steps_per_epoch  # 6 with 1293 samples
    assert lrs[0] == pytest.approx(4e-3 * 0.1)  # the LR the first step of the warm-up used
    assert lrs[steps - 1] == pytest.approx(4e-3 * (0.1 + 0.9 * (steps - 1) / steps))
    assert max(lrs) == pytest.approx(4e-3) and lrs[steps] == pytest.approx(4e-3)  # cosine starts at the peak

"""trainwise fix on real runs: which change comes next after a kept one.

A finding that is still there after the change that helped takes that change a step further first; a
kept change that leaves a run healthy but short of fitting its own training set is followed through
even when validation has levelled off; and outputs blown up to 1e13 and beyond are a divergence (the LR
comes down), however well accuracy holds."""

import torch
from torch import nn

import trainwise
from trainwise.autofix.attempt import Attempt
from trainwise.autofix.chain import doctor_fixes
from trainwise.autofix.report_section import chain_html
from trainwise.autofix.score import short_of_fit
from trainwise.config import build_config
from trainwise.models import build_model

QUIET = {"train__progress": "none", "train__threads": 1, "train__report": False}


def test_a_finding_still_there_after_the_change_that_helped_takes_that_change_further_first(tmp_path):
    """An MLP on 400 MNIST-1D samples memorises them; 1600 helps and it still overfits: 6400 next."""
    run = trainwise.fit(out=tmp_path / "few", data__name="mnist1d", data__val_fraction=0.2, data__train_subset=400,
                        model__hidden=[256, 256], train__epochs=20, **QUIET)
    assert run.findings[0].code == "overfitting" and run.findings[0].fixes[0] == "data.train_subset=1600", [str(f) for f in run.findings]

    def data_last_after_the_first_run(current: Attempt):
        """The doctor's fixes, with more data put last once the config has changed: the chain's own step must lead."""
        found = list(doctor_fixes(current))
        if current.config.data.train_subset == 400:
            return iter(found)
        return iter([p for p in found if not p[1].startswith("data.")] + [p for p in found if p[1].startswith("data.")])

    chain = trainwise.fix(tmp_path / "few", rounds=2, out=tmp_path / "fix", propose=data_last_after_the_first_run)
    first, second = chain.rounds
    assert first["change"] == "data.train_subset=1600" and first["kept"] and "overfitting" in first["findings_after"]
    assert second["change"] == "data.train_subset=6400" and second["step_further"] and not second["follow_through"]
    assert second["finding"] == "overfitting" and second["after"] > first["after"]
    assert "overfitting after the change that helped; a step further along it" in chain.to_text()
    assert "overfitting was still there after it" in chain_html(chain.to_dict())  # the report's Repairs section says so too


def test_a_raised_lr_that_leaves_the_run_underfitting_goes_up_once_more_before_more_epochs(tmp_path):
    """AdamW at 1e-7 on MNIST-1D: the range test's valley (5e-4) helps and leaves the run underfitting, whose own
    first fix is twice the epochs; the LR one step further up comes first, at the cost of a run of the same length."""
    run = trainwise.fit(out=tmp_path / "slow", data__name="mnist1d", data__val_fraction=0.2, optim__lr=1e-7, train__epochs=6,
                        model__hidden=[256, 256], **QUIET)
    assert [f.code for f in run.findings] == ["lr_too_low"], [str(f) for f in run.findings]
    chain = trainwise.fix(tmp_path / "slow", rounds=2, out=tmp_path / "fix")
    first, second = chain.rounds
    assert first["change"].startswith("optim.lr=") and first["kept"] and "underfitting" in first["findings_after"], chain.to_text()
    raised = float(first["change"].split("=")[1])
    assert 1e-4 <= raised <= 3e-3, chain.to_text()
    assert second["change"].startswith("optim.lr=") and float(second["change"].split("=")[1]) > raised, chain.to_text()
    assert second["finding"] == "underfitting" and second["step_further"], chain.to_text()
    assert second["after"] > first["after"], chain.to_text()  # on this data the higher LR helps: more than the noise
    assert "underfitting after the change that helped; a step further along it" in chain.to_text()


def _sigmoid_net_small_init(cfg, data=None) -> nn.Module:
    """The config's MLP for digits (64 inputs, 10 classes), every linear layer drawn from N(0, 0.01^2), biases
    zero (old tutorials' init)."""
    torch.manual_seed(cfg.train.seed)
    net = build_model(cfg.model, (64,), 64, 10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.01)
                m.bias.zero_()
    return net


def test_a_repair_that_leaves_the_training_set_unfitted_is_followed_through_after_it_levels_off(tmp_path):
    """Eight sigmoid layers at N(0, 0.01): stuck at chance. Batch norm brings it to ~0.92 and it levels off
    while its training accuracy stays near 0.94; the stuck finding's next fix (ReLU) is
    then tried, and does better."""
    cfg = {"data__name": "digits", "data__val_fraction": 0.2, "model__activation": "sigmoid", "model__hidden": [32] * 8,
           "optim__name": "sgd", "optim__lr": 0.05, "train__epochs": 20, "train__seed": 200, **QUIET}
    model = _sigmoid_net_small_init(build_config({"model": {"activation": "sigmoid", "hidden": [32] * 8}, "train": {"seed": 200}}))
    broken = trainwise.fit(out=tmp_path / "deep", model=model, **cfg)
    assert broken.history.records[-1]["val_acc"] < 0.2, "the planted fault did not show"
    chain = trainwise.fix(tmp_path / "deep", rounds=3, out=tmp_path / "fix", model=_sigmoid_net_small_init)
    first = chain.rounds[0]
    assert first["change"] == "model.batch_norm=true" and first["kept"] and first["findings_after"] == ["healthy"]
    follow = chain.rounds[1]
    assert follow["follow_through"] and follow["change"] == "model.activation=relu"
    assert follow["after"] > first["after"]  # kept or not, that is the noise threshold's call: the step was worth a run


def test_short_of_fit_reads_training_accuracy_at_the_scored_epoch():
    rows = lambda accs: [{"epoch": i + 1, "train_acc": a, "val_acc": a} for i, a in enumerate(accs)]  # noqa: E731
    assert short_of_fit(rows([0.5, 0.8, 0.93, 0.94, 0.94, 0.93, 0.94]))
    assert not short_of_fit(rows([0.5, 0.8, 0.98, 0.99, 1.0, 1.0, 1.0]))
    assert short_of_fit(rows([0.5, 0.8, 0.9, 0.9, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0]), restored_epoch=5)  # the weights put back
    assert not short_of_fit([{"epoch": 1, "val_acc": 0.5}])  # no training accuracy: nothing to read


def test_a_run_whose_loss_blows_up_while_accuracy_holds_has_diverged_and_its_lr_comes_down(tmp_path):
    """SGD at 0.1 on batches of one (breast_cancer): the loss goes 1e13 -> 1e35 while accuracy stays near 0.85."""
    # monitors every 5 steps, as the auto-repair benchmark runs it: on this seed a NaN guard skips the one
    # non-finite step and every epoch's loss stays finite (without them the third epoch's loss is NaN)
    cfg = {"data__name": "breast_cancer", "data__val_fraction": 0.2, "data__batch_size": 1, "model__hidden": [64],
           "optim__name": "sgd", "optim__lr": 0.1, "train__epochs": 10, "train__seed": 200, "doctor__live": False,
           "monitors__every_n_steps": 5, **QUIET}
    run = trainwise.fit(out=tmp_path / "hot", **cfg)
    losses = [r["train_loss"] for r in run.history.records]
    assert all(isinstance(x, float) for x in losses) and max(losses) > 1e20, f"the planted fault did not show: {losses}"
    accs = [r["val_acc"] for r in run.history.records]
    assert max(accs[1:]) > accs[0] + 0.02  # validation accuracy rose meanwhile: what a ramped loss term looks like
    diverged = run.findings[0]
    assert (diverged.code, diverged.severity) == ("diverged", "error"), [str(f) for f in run.findings]
    lr_fix = next(f for f in diverged.fixes if f.startswith("optim.lr="))
    assert diverged.fixes.index(lr_fix) < diverged.fixes.index("train.grad_clip_norm=1.0")  # the LR before clipping
    chain = trainwise.fix(tmp_path / "hot", rounds=1, out=tmp_path / "fix")
    (first,) = chain.rounds
    assert first["change"].startswith("optim.lr=") and float(first["change"].split("=")[1]) < 0.1
    assert first["kept"] and first["after"] >= 0.95

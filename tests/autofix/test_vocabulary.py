"""The doctor's fix vocabulary where it repairs real digits / breast_cancer runs: batch norm first for a
deep net without normalization, a re-initialisation that undoes a planted bias shift (also on a model
passed in), a bottleneck lifted to its neighbours' width, raw inputs standardised first, and LR fixes
that stay inside the optimizer's usual range."""

import torch
from torch import nn

import trainwise
from trainwise.config import build_config
from trainwise.doctor import fixes
from trainwise.doctor.context import Context
from trainwise.models import build_model
from trainwise.techniques.init import apply_init

SMALL = {"data__name": "digits", "data__val_fraction": 0.2, "train__epochs": 8, "train__progress": "none",
         "train__threads": 1, "train__report": False}


def _problems(run):
    return [f for f in run.findings if f.severity in ("warning", "error")]


def _digits_mlp(cfg, biases=None, weight_scale=None) -> nn.Module:
    """The mlp the config builds for digits (64 inputs, 10 classes), with a planted init fault."""
    torch.manual_seed(cfg.train.seed)
    net = build_model(cfg.model, (64,), 64, 10)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for m in linears[:-1] if biases is not None else []:
            m.bias.fill_(biases)
        for m in linears if weight_scale is not None else []:
            m.weight.mul_(weight_scale)
    return net


def test_a_planted_bias_shift_is_undone_by_a_reinit_even_on_a_model_passed_in(tmp_path):
    cfg = build_config({"model": {"hidden": [64, 64]}})
    # What the init scheme does: weights redrawn, every bias zero (the -5 gone), on any module.
    net = _digits_mlp(cfg, biases=-5.0)
    apply_init(net, cfg.replace({"init.scheme": "he_normal"}))
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in net.modules() if isinstance(m, nn.Linear))

    broken = trainwise.fit(model=_digits_mlp(cfg, biases=-5.0), out=tmp_path / "dead", model__hidden=[64, 64], **SMALL)
    assert broken.history.records[-1]["val_acc"] < 0.3, "the planted fault did not show"
    dead = next(f for f in broken.findings if f.code == "dead_units")
    # dead from the first epoch at AdamW's usual LR: the init, so a re-init first, before any activation swap
    assert dead.fixes[0] == "init.scheme=he_normal" and not any(f.startswith("model.") for f in dead.fixes)  # a user model
    repaired = trainwise.fit(model=_digits_mlp(cfg, biases=-5.0), out=tmp_path / "reinit", model__hidden=[64, 64],
                             init__scheme="he_normal", **SMALL)
    assert repaired.history.records[-1]["val_acc"] > 0.9


def test_a_deep_unnormalised_net_that_diverges_gets_batch_norm_first_and_the_chain_keeps_it(tmp_path):
    deep = {"model__hidden": [64] * 4, "optim__name": "sgd", "optim__lr": 0.05}
    cfg = build_config({"model": {"hidden": [64] * 4}})
    broken = trainwise.fit(model=_digits_mlp(cfg, weight_scale=10.0), out=tmp_path / "x10", **(SMALL | deep))
    assert broken.history.records[-1]["val_acc"] < 0.3, "the planted fault did not show"
    # The doctor cannot tell whether a model passed in reads model.*; a chain given the model's factory can.
    assert not any(f.startswith("model.") for p in _problems(broken) for f in p.fixes)
    chain = trainwise.fix(tmp_path / "x10", rounds=1, out=tmp_path / "fix",
                          model=lambda c, data: _digits_mlp(c, weight_scale=10.0))
    (first,) = chain.rounds
    assert first["finding"] == "diverged" and first["change"] == "model.batch_norm=true"  # SGD 0.05 is a usual LR
    assert first["kept"] and first["after"] > 0.9


def test_a_bottleneck_is_lifted_to_its_neighbours_width(tmp_path):
    run = trainwise.fit(out=tmp_path / "b", model__hidden=[64, 1, 64], **SMALL)
    under = next(f for f in _problems(run) if f.code == "underfitting")
    assert under.fixes[0] == "model.hidden=[64, 64, 64]"  # doubling gives [128, 2, 128]: the same bottleneck
    ctx = lambda hidden: Context([{"epoch": 1, "train_loss": 2.3}], {"model": {"name": "mlp", "hidden": hidden}}, num_classes=10)  # noqa: E731
    assert fixes.wider_model(ctx([3])) == "model.hidden=[32]"  # 3 units cannot keep 10 classes apart
    assert fixes.wider_model(ctx([512, 128, 32])) == "model.hidden=[1024, 256, 64]"  # a funnel is no bottleneck
    assert fixes.wider_model(ctx([64, 3])) == "model.hidden=[64, 64]"


def test_raw_inputs_are_standardised_before_the_lr_is_touched(tmp_path):
    """breast_cancer's raw features reach ~4000: SGD at 0.1 (a usual LR) diverges on them."""
    run = trainwise.fit(out=tmp_path / "raw", data__name="breast_cancer", data__normalize=False, optim__name="sgd", optim__lr=0.1,
                        model__hidden=[64], **{k: v for k, v in SMALL.items() if k != "data__name"})
    first = _problems(run)[0]
    assert first.fixes[0] == "data.normalize=true", (first.code, first.fixes)
    repaired = trainwise.fit(out=tmp_path / "std", data__name="breast_cancer", optim__name="sgd", optim__lr=0.1, model__hidden=[64],
                             **{k: v for k, v in SMALL.items() if k != "data__name"})
    assert repaired.history.records[-1]["val_acc"] > run.history.records[-1]["val_acc"] + 0.05


def test_batch_norm_and_reinit_only_where_they_act():
    def ctx(config):
        return Context([{"epoch": 1, "train_loss": 2.3}], config, num_classes=10)

    assert fixes.batch_norm(ctx({"model": {"name": "mlp"}})) == "model.batch_norm=true"
    assert fixes.batch_norm(ctx({"model": {"name": "mlp", "batch_norm": True}})) is None  # already on
    assert fixes.batch_norm(ctx({"model": {"name": "resnet"}})) is None  # has it built in
    assert fixes.batch_norm(ctx({"model": {"name": "mlp"}, "data": {"batch_size": 1}})) is None  # no batch statistics
    assert fixes.reinit(ctx({"model": {"activation": "sigmoid"}, "init": {"scheme": "default"}})) == "init.scheme=xavier_normal"
    assert fixes.reinit(ctx({"model": {"activation": "relu"}, "init": {"scheme": "zeros"}})) == "init.scheme=he_normal"
    assert fixes.reinit(ctx({"model": {"activation": "relu"}, "init": {"scheme": "xavier_uniform"}})) is None  # chosen already
    assert fixes.reinit(ctx({"model": {}, "init": {"scheme": "default"}, "finetune": {"init_from": "runs/pre"}})) is None


def test_lr_fixes_from_inside_the_range_stay_inside_it():
    def ctx(name, lr):
        return Context([{"epoch": 1, "train_loss": 2.3}], {"optim": {"name": name, "lr": lr}})

    assert fixes.lower_lr(ctx("sgd", 5e-3)) == "optim.lr=1e-3"  # not 5e-4, below SGD's usual range
    assert fixes.lower_lr(ctx("sgd", 1e-3)) is None  # at the edge: an LR fix is not the repair
    assert fixes.higher_lr(ctx("adamw", 5e-3)) == "optim.lr=0.01"
    assert fixes.higher_lr(ctx("adamw", 1e-2)) is None
    assert fixes.lower_lr(ctx("sgd", 2.0)) == "optim.lr=0.05"  # from above the range: the usual start


def test_a_training_set_the_config_cuts_short_gets_more_of_it_first(tmp_path):
    """30 digits (3 per class) learnt by heart: more of the withheld data is the fix the chain keeps."""
    run = trainwise.fit(out=tmp_path / "tiny", data__train_subset=30, model__hidden=[256], **(SMALL | {"train__epochs": 30}))
    memorised = next(f for f in run.findings if f.code == "overfitting")
    assert memorised.fixes[0] == "data.train_subset=120"
    chain = trainwise.fix(tmp_path / "tiny", rounds=2, out=tmp_path / "fix")
    first = chain.rounds[0]
    assert first["change"] == "data.train_subset=120" and first["kept"] and first["after"] > first["before"] + 0.05
    if len(chain.rounds) > 1 and chain.rounds[1]["follow_through"]:  # healthy and still improving: the same line, x4 again
        assert chain.rounds[1]["change"] == "data.train_subset=480"
    # the validation split is the same for every subset: the scores compare
    assert chain.final["val"] >= first["after"]


def test_more_data_only_where_the_config_holds_it_back():
    assert fixes.more_data(Context(records=[], config={"data": {"train_subset": 600}})) == "data.train_subset=2400"
    assert fixes.more_data(Context(records=[], config={"data": {"train_subset": None}})) is None
    assert fixes.more_data(Context(records=[], config={})) is None


def test_a_run_stuck_at_chance_behind_a_layer_narrower_than_the_classes_gets_a_wider_model(tmp_path):
    """A 2-channel CNN on 600 Fashion-MNIST images: after global pooling the head sees 2 features for 10 classes."""
    run = trainwise.fit(out=tmp_path / "pinched", data__name="fashion_mnist", data__val_fraction=0.005, data__train_subset=600,
                        data__batch_size=32, model__name="cnn", model__channels=[2, 2, 2], model__batch_norm=True, optim__lr=3e-3,
                        train__epochs=10, train__seed=51, train__progress="none", train__threads=1, train__report=False)
    stuck = next(f for f in run.findings if f.code == "stuck_at_chance")
    # at once to a sound pyramid: the last stage at 32 >= 2K, each stage half the next (doubling took four re-runs)
    assert "model.channels=[8, 16, 32]" in stuck.fixes and "fewer than the 10 classes" in stuck.message
    assert stuck.fixes.index("model.channels=[8, 16, 32]") < next(i for i, f in enumerate(stuck.fixes) if f.startswith("optim.lr="))
    chain = trainwise.fix(tmp_path / "pinched", rounds=1, out=tmp_path / "fix")
    (first,) = chain.rounds
    assert first["change"] == "model.channels=[8, 16, 32]" and first["kept"] and first["after"] > first["before"] + 0.3


def test_pinch_is_a_width_below_the_number_of_classes():
    ctx = lambda model: Context(records=[], config={"model": model}, num_classes=10)  # noqa: E731
    assert fixes.pinch(ctx({"name": "mlp", "hidden": [64, 3, 64]}))[0] == 3
    assert fixes.pinch(ctx({"name": "cnn", "channels": [2, 4, 8]}))[0] == 8
    assert fixes.pinch(ctx({"name": "cnn", "channels": [2, 4, 16]})) is None  # a narrow stem is not all the head sees
    assert fixes.pinch(ctx({"name": "mlp", "hidden": [64]})) is None


def test_a_cnn_is_widened_to_a_pyramid_when_its_head_is_narrower_than_the_classes_and_doubled_otherwise():
    ctx = lambda channels, k=10: Context(records=[], config={"model": {"name": "cnn", "channels": channels}}, num_classes=k)  # noqa: E731
    assert fixes.wider_model(ctx([2, 2, 2])) == "model.channels=[8, 16, 32]"
    assert fixes.wider_model(ctx([4, 4])) == "model.channels=[16, 32]"
    assert fixes.wider_model(ctx([64, 2])) == "model.channels=[64, 32]"  # a wide stem stays as wide
    assert fixes.wider_model(ctx([2, 2, 2], k=100)) == "model.channels=[64, 128, 256]"
    assert fixes.wider_model(ctx([8, 16, 32])) == "model.channels=[16, 32, 64]"  # a head wide enough: twice the width
    assert fixes.wider_model(ctx([2, 2], k=None)) == "model.channels=[4, 4]"  # K unknown: twice the width


def test_a_net_the_lr_killed_gets_the_lr_fix_first_and_a_net_its_init_killed_does_not(tmp_path):
    # SGD at 5 (the usual range tops out at 0.1-1): epoch 1's training loss explodes, every ReLU dies and the
    # run sits at chance. Dead units and a vanishing gradient are then the LR's doing, so lowering it comes first.
    hot = trainwise.fit(out=tmp_path / "hot", optim__name="sgd", optim__lr=5.0, **SMALL)
    assert hot.history.records[-1]["val_acc"] < 0.2, "the planted fault did not show"
    stuck = next(f for f in hot.findings if f.code == "stuck_at_chance")
    assert stuck.fixes[0].startswith("optim.lr=") and float(stuck.fixes[0].split("=")[1]) < 1.0
    assert "optim.lr=5 is above the usual range" in stuck.message.split("Likely: ")[1].split(";")[0]
    cooled = trainwise.fit(out=tmp_path / "cooled", optim__name="sgd", optim__lr=float(stuck.fixes[0].split("=")[1]), **SMALL)
    assert cooled.history.records[-1]["val_acc"] > 0.9
    # ReLU biases at -5 at AdamW's usual LR: the LR is not the cause and is not the first fix.
    cfg = build_config({"model": {"hidden": [64, 64]}})
    dead = trainwise.fit(model=_digits_mlp(cfg, biases=-5.0), out=tmp_path / "dead", model__hidden=[64, 64], **SMALL)
    first = [f.fixes[0] for f in dead.findings if f.code in ("stuck_at_chance", "dead_units") and f.fixes]
    assert first and not any(f.startswith("optim.lr=") for f in first)

"""Initialization, fine-tuning helpers, progressive phases and flip TTA as pure functions."""

import math

import pytest
import torch
from torch import nn

import trainwise
from trainwise.config import Config, ModelConfig, OptimConfig
from trainwise.errors import UserError
from trainwise.models.cnn import build_cnn
from trainwise.optim import build_optimizer, param_groups
from trainwise.techniques import finetune as FT
from trainwise.techniques.init import init_weights
from trainwise.techniques.progressive import Phase, phase_at, resize
from trainwise.techniques.tta import averaged_logits, flip_logits


@pytest.mark.parametrize("scheme, variance", [
    ("xavier_normal", 2 / (400 + 600)),
    ("xavier_uniform", 2 / (400 + 600)),
    ("he_normal", 2 / 400),
    ("he_uniform", 2 / 400),
])
def test_init_variance_matches_the_formula(scheme, variance):
    torch.manual_seed(0)
    layer = init_weights(nn.Sequential(nn.Linear(400, 600)), scheme, "relu")[0]
    assert layer.weight.var().item() == pytest.approx(variance, rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0


def test_he_fan_out_and_gains_on_a_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3)  # fan_in 16*9 = 144, fan_out 64*9 = 576
    init_weights(conv, "he_normal", "relu", mode="fan_out")
    assert conv.weight.var().item() == pytest.approx(2 / 576, rel=0.03)
    init_weights(conv, "he_normal", "tanh")
    assert conv.weight.var().item() == pytest.approx((5 / 3) ** 2 / 144, rel=0.03)
    init_weights(conv, "he_uniform", "leaky_relu")
    assert conv.weight.var().item() == pytest.approx(2 / (1 + 0.01**2) / 144, rel=0.03)


def test_zeros_init_never_breaks_symmetry():
    torch.manual_seed(0)
    model = init_weights(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), "zeros")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    w = model[0].weight
    assert torch.allclose(w, w[:1].expand_as(w))  # every hidden unit is the same unit


def test_default_leaves_the_model_and_unknown_names_fail():
    model = nn.Linear(3, 3)
    before = model.weight.clone()
    assert torch.equal(init_weights(model, "default").weight, before)
    with pytest.raises(UserError, match="did you mean 'he_normal'"):
        init_weights(model, "he_norml")


def cnn():
    return build_cnn(ModelConfig(name="cnn", channels=[4, 8], batch_norm=True), input_shape=(1, 8, 8), out_dim=3)


def test_layers_head_and_multipliers_of_a_cnn():
    model = cnn()  # stage1.conv, stage1.norm, stage2.conv, stage2.norm, head (once numbered 0, 1, 4, 5, 10)
    index = FT.layer_index(model)
    assert index == {"stage1.conv.weight": 0, "stage1.norm.weight": 0, "stage1.norm.bias": 0, "stage2.conv.weight": 1,
                     "stage2.norm.weight": 1, "stage2.norm.bias": 1, "head.weight": 2, "head.bias": 2}
    assert FT.head_names(model) == ["head.weight", "head.bias"]
    mults = FT.lr_multipliers(model, head_lr_mult=10.0, layer_decay=0.5, overrides={"stage1.norm.*": 3.0})
    assert mults == {"stage1.conv.weight": 0.25, "stage1.norm.weight": 3.0, "stage1.norm.bias": 3.0, "stage2.conv.weight": 0.5,
                     "stage2.norm.weight": 0.5, "stage2.norm.bias": 0.5, "head.weight": 10.0, "head.bias": 10.0}
    # a pattern written against the numbered layout of older versions means the same layer
    assert FT.lr_multipliers(model, head_lr_mult=10.0, layer_decay=0.5, overrides={"1.*": 3.0}) == mults
    assert FT.head_names(model, ["10.*"]) == FT.head_names(model, ["head.*"]) == ["head.weight", "head.bias"]


def test_a_pattern_that_names_no_layer_is_an_error_listing_the_layers():
    model = cnn()  # 11 layers in the old numbering (0-10): "11.*" and another model's names select nothing
    for call, key in ((lambda: FT.frozen_names(model, ["stage1.*", "hidden1.*"]), "finetune.freeze"),
                      (lambda: FT.lr_multipliers(model, overrides={"11.*": 2.0}), "finetune.lr_mult"),
                      (lambda: FT.head_names(model, ["classifier.*"]), "finetune.head")):
        with pytest.raises(UserError, match=rf"{key} pattern .* matches no parameter.*layers stage1.conv, stage1.norm, stage2.conv, stage2.norm, head"):
            call()
    with pytest.raises(UserError, match="finetune.freeze pattern 'blocks.0.*' matches no parameter"):  # through the config too, before training
        trainwise.fit(Config().replace({"train.progress": "none", "train.threads": 1, "train.report": False, "train.epochs": 1,
                                        "data.train_subset": 200, "finetune.freeze": ["blocks.0.*"]}))


def test_layer_multipliers_land_in_the_optimizer_param_groups():
    model = cnn()
    mults = FT.lr_multipliers(model, head_lr_mult=10.0, layer_decay=0.5)
    opt = build_optimizer(param_groups(model, 0.01, True, mults), OptimConfig(lr=0.1), 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for group in opt.param_groups:
        for p in group["params"]:
            seen[names[id(p)]] = (group["lr"], group["weight_decay"])
    assert seen["stage1.conv.weight"] == (pytest.approx(0.025), 0.01)
    assert seen["stage2.norm.bias"] == (pytest.approx(0.05), 0.0)
    assert seen["head.weight"] == (pytest.approx(1.0), 0.01) and seen["head.bias"] == (pytest.approx(1.0), 0.0)
    assert len(seen) == len(names)


def test_freeze_patterns_and_loading_around_a_new_head():
    model = cnn()
    body = ["stage1.conv.weight", "stage1.norm.weight", "stage1.norm.bias", "stage2.conv.weight", "stage2.norm.weight", "stage2.norm.bias"]
    assert FT.frozen_names(model, ["*"]) == body
    assert FT.frozen_names(model, ["stage*.conv.*"]) == ["stage1.conv.weight", "stage2.conv.weight"]
    assert FT.frozen_names(model, ["0.*", "4.*"]) == ["stage1.conv.weight", "stage2.conv.weight"]  # the old numbered names
    assert FT.frozen_names(model, ["stage1.*"]) == body[:3]
    assert FT.norm_modules_of(model, FT.frozen_names(model, ["*"])) == [model.stage1.norm, model.stage2.norm]
    FT.set_trainable(model, ["stage1.conv.weight"], False)
    assert not model.stage1.conv.weight.requires_grad and model.stage2.conv.weight.requires_grad
    donor = build_cnn(ModelConfig(name="cnn", channels=[4, 8], batch_norm=True), input_shape=(1, 8, 8), out_dim=5)
    loaded, skipped = FT.load_matching(model, donor.state_dict())
    assert set(skipped) == {"head.weight", "head.bias"} and "shape (5, 8) there" in skipped["head.weight"]
    assert torch.equal(model.stage1.conv.weight, donor.stage1.conv.weight) and "stage1.norm.running_mean" in loaded


def test_phases_and_resize():
    phases = [Phase(4, 28, False), Phase(1, 16, True)]
    assert phase_at(phases, 1) == Phase(1, 16, True) and phase_at(phases, 3).resolution == 16
    assert phase_at(phases, 9) == Phase(4, 28, False) and phase_at([Phase(2, 16)], 1) is None
    assert Phase(1, 16).label() == "res16+aug" and Phase(3, None, False).label() == "resfull-noaug"
    x = torch.randn(2, 1, 28, 28)
    assert resize(x, 14).shape == (2, 1, 14, 14) and resize(x, None) is x and resize(torch.randn(2, 28, 42), 14).shape == (2, 14, 21)
    assert torch.allclose(resize(torch.ones(1, 1, 28, 28), 14), torch.ones(1, 1, 14, 14))


def test_flip_tta_averages_the_probabilities():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(4, 1, 3, 4)
    expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    assert torch.allclose(flip_logits(model, (x,), "multiclass").softmax(1), expected, atol=1e-6)
    binary = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    p = (binary(x).sigmoid() + binary(x.flip(-1)).sigmoid()) / 2
    assert torch.allclose(flip_logits(binary, (x,), "binary").sigmoid(), p, atol=1e-6)
    assert torch.allclose(averaged_logits(torch.tensor([[0.25, 0.75]]), "binary"), torch.tensor([[math.log(3)]]))
    with pytest.raises(UserError, match="image inputs"):
        flip_logits(nn.Linear(4, 2), (torch.randn(3, 4),), "multiclass")

"""Initializations, clipping and the demonstrations built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainwise.scratch import demos
from trainwise.scratch import init as initializers
from trainwise.scratch.clipping import clip_grad_norm, clip_grad_value, global_norm


@pytest.mark.parametrize(
    "name, expected_std",
    [("naive", 0.01), ("xavier", np.sqrt(2 / (300 + 200))), ("he", np.sqrt(2 / 300))],
)
def test_init_scales(name: str, expected_std: float) -> None:
    w = initializers.get(name)(300, 200, np.random.default_rng(0))
    assert w.shape == (300, 200)
    assert abs(w.mean()) < 0.05 * expected_std
    assert w.std() == pytest.approx(expected_std, rel=0.02)


def test_init_scales_agree_with_torch_init() -> None:
    t = torch.empty(200, 300, dtype=torch.float64)  # torch layout: (fan_out, fan_in)
    torch.manual_seed(0)
    torch.nn.init.xavier_normal_(t)
    xavier = initializers.xavier(300, 200, np.random.default_rng(0))
    assert xavier.std() == pytest.approx(t.std().item(), rel=0.02)
    torch.nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert initializers.he(300, 200, np.random.default_rng(0)).std() == pytest.approx(t.std().item(), rel=0.02)


def test_zeros_and_unknown_init() -> None:
    assert not initializers.zeros(3, 4, np.random.default_rng(0)).any()
    with pytest.raises(ValueError, match="unknown init"):
        initializers.get("orthogonal")


def test_zero_init_keeps_hidden_units_identical() -> None:
    zeros = demos.symmetry("zeros")
    assert zeros["unit_spread"] < 1e-12
    assert zeros["weight_norm"] > 0.05  # the weights did move, just all in the same way
    assert zeros["accuracy"] < 0.8  # eight copies of one unit cannot fit XOR
    xavier = demos.symmetry("xavier")
    assert xavier["unit_spread"] > 0.1
    assert xavier["accuracy"] == 1.0


def test_activation_variance_across_ten_layers() -> None:
    v = demos.init_variance()
    assert all(len(layers) == 10 for by_init in v.values() for layers in by_init.values())
    for act in ("tanh", "relu"):
        assert max(v[act]["zeros"]) == 0.0
        assert v[act]["naive"][-1] < 1e-10
    relu_he = v["relu"]["he"]
    assert 0.5 < relu_he[-1] / relu_he[0] < 2.0
    assert v["relu"]["xavier"][-1] < 0.01 * v["relu"]["xavier"][0]
    assert v["tanh"]["xavier"][-1] > 0.02
    assert v["tanh"]["he"][-1] > 0.2


def test_vanishing_gradients_sigmoid_vs_relu_he() -> None:
    norms = demos.vanishing_gradients()
    sigmoid, relu = norms["sigmoid + xavier"], norms["relu + he"]
    assert len(sigmoid) == len(relu) == 11
    assert all(a < b for a, b in zip(sigmoid, sigmoid[1:]))  # shrinks towards the input
    assert sigmoid[0] / sigmoid[-1] < 1e-4
    assert 0.1 < relu[0] / relu[-1] < 10.0


def test_clip_grad_norm_matches_torch() -> None:
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(4, 3)) * 5, rng.normal(size=3)]
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    torch_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=2.0)
    ours = [g.copy() for g in grads]
    assert clip_grad_norm(ours, 2.0) == pytest.approx(torch_norm.item(), rel=1e-14)
    for g, p in zip(ours, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-14)
    assert global_norm(ours) == pytest.approx(2.0, rel=1e-6)

    small = [np.array([0.1, -0.2])]
    clip_grad_norm(small, 2.0)
    np.testing.assert_array_equal(small[0], [0.1, -0.2])  # under the limit: untouched


def test_clip_grad_value_matches_torch() -> None:
    g = np.random.default_rng(1).normal(size=(5, 5))
    t = torch.zeros(5, 5, dtype=torch.float64, requires_grad=True)
    t.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_([t], clip_value=0.5)
    ours = [g.copy()]
    clip_grad_value(ours, 0.5)
    np.testing.assert_array_equal(ours[0], t.grad.numpy())
    assert np.abs(ours[0]).max() == 0.5


def test_clipping_demo() -> None:
    raw, by_norm, by_value = demos.clipping().values()
    assert raw["norm"] > 100.0  # the gradient really explodes
    assert by_norm["norm"] == pytest.approx(1.0, rel=1e-5)
    assert by_norm["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert by_value["max_abs"] == 0.01
    assert by_value["cosine"] < 0.9


def test_demos_main_prints_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert demos.main([]) == 0
    out = capsys.readouterr().out
    for title in ("Symmetry", "Activation variance per layer, tanh", "Activation variance per layer, relu",
                  "Gradient norm", "Gradient clipping"):  # fmt: skip
        assert title in out
    assert demos.main(["clipping"]) == 0
    assert "Symmetry" not in capsys.readouterr().out

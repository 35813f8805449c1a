"""MixUp/CutMix, EMA and the weight penalties against hand computations."""

import pytest
import torch
import torch.nn.functional as F

from trainwise.losses import hard_labels, task_loss
from trainwise.techniques import ema as E
from trainwise.techniques import mixup as M
from trainwise.techniques.penalties import l1_penalty, l2_penalty, penalized, penalty


def test_mixup_of_two_one_hot_rows():
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 4.0]])
    soft = M.soft_targets(torch.tensor([0, 2]), "multiclass", 3)
    assert torch.equal(soft, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))
    mixed, targets = M.mixup_batch(x, soft, 0.7, torch.tensor([1, 0]))
    assert torch.allclose(mixed, torch.tensor([[0.7, 0.3, 2.6], [0.3, 0.7, 3.4]]))
    assert torch.allclose(targets, torch.tensor([[0.7, 0.0, 0.3], [0.3, 0.0, 0.7]]))
    assert hard_labels(targets, "multiclass").tolist() == [0, 2]  # the dominant label


def test_soft_target_loss_is_the_lambda_mix_of_the_two_losses():
    logits = torch.randn(5, 4)
    y, perm, lam = torch.tensor([0, 1, 2, 3, 1]), torch.tensor([4, 3, 2, 1, 0]), 0.3
    _, targets = M.mixup_batch(torch.zeros(5, 1), M.soft_targets(y, "multiclass", 4), lam, perm)
    expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
    assert torch.allclose(task_loss(logits, targets, "multiclass"), expected, atol=1e-6)


def test_binary_soft_targets():
    y = torch.tensor([1, 0, 0])
    _, targets = M.mixup_batch(torch.zeros(3, 2), M.soft_targets(y, "binary", 2), 0.8, torch.tensor([1, 2, 0]))
    assert torch.allclose(targets, torch.tensor([0.8, 0.0, 0.2]))
    assert hard_labels(targets, "binary").tolist() == [1, 0, 0]
    logit = torch.tensor([0.3, -1.0, 2.0])
    expected = F.binary_cross_entropy_with_logits(logit, targets)
    assert torch.allclose(task_loss(logit[:, None], targets, "binary"), expected)


def test_cutmix_box_and_effective_lambda():
    assert M.cutmix_box(0.75, 28, 28, (0.5, 0.5)) == (7, 7, 14, 14)
    assert M.cutmix_box(0.75, 28, 28, (0.0, 0.0)) == (0, 0, 7, 7)  # clipped at the corner
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    out, targets, lam = M.cutmix_batch(x, M.soft_targets(torch.tensor([0, 1]), "multiclass", 2), (1, 0, 2, 2), torch.tensor([1, 0]))
    assert lam == pytest.approx(0.75)
    assert out[0].sum() == 4 and torch.equal(out[0, 0, 1:3, 0:2], torch.ones(2, 2))
    assert torch.allclose(targets, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))


def test_sample_lambda_is_beta_distributed():
    torch.manual_seed(0)
    draws = torch.tensor([M.sample_lambda(0.4) for _ in range(4000)])
    assert draws.mean().item() == pytest.approx(0.5, abs=0.03)
    assert draws.var().item() == pytest.approx(1 / (4 * (2 * 0.4 + 1)), abs=0.02)  # Beta(a, a) variance


def test_ema_after_three_updates():
    ema, w = [torch.tensor([0.0])], torch.tensor([1.0])
    for step in range(3):
        E.ema_update(ema, [w * (step + 1)], 0.9)  # weights 1, 2, 3
    # 0.9^3 * 0 + 0.1 * (0.9^2 * 1 + 0.9 * 2 + 3)
    assert ema[0].item() == pytest.approx(0.1 * (0.81 + 1.8 + 3))
    assert [E.ema_decay(0.999, t) for t in range(3)] == pytest.approx([0.1, 2 / 11, 3 / 12])
    assert E.ema_decay(0.9, 1000) == 0.9 and E.ema_decay(0.999, 0, warmup=False) == 0.999


def test_ema_of_a_state_dict_and_swapping():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    avg = E.copy_state(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(8, 2))  # moves the running statistics and the batch counter
    E.update_state(avg, model, 0.75)
    assert torch.allclose(avg["0.weight"], model[0].weight - 0.75)
    assert avg["1.num_batches_tracked"].item() == 1
    raw = E.copy_state(model)
    with E.swapped_weights(model, avg):
        assert torch.equal(model[0].weight, avg["0.weight"])
    assert torch.equal(model[0].weight, raw["0.weight"])


def test_penalties_by_hand():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    params = penalized(model)
    assert len(params) == 1  # weight matrices only: no biases, no norm weights
    assert l1_penalty(params).item() == pytest.approx(3.5)
    assert l2_penalty(params).item() == pytest.approx(5.25)
    assert penalty(params, l1=0.1, l2=0.01).item() == pytest.approx(0.35 + 0.0525)
    assert penalty([], 1.0, 1.0).item() == 0.0


def test_label_smoothing_for_multiclass_and_binary_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = logits.log_softmax(1)
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0].mean())  # target (1 - s) one-hot + s / K everywhere
    assert task_loss(logits, torch.tensor([0]), "multiclass", 0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    z = torch.tensor([[1.5]])
    t = 1 * 0.8 + 0.2 / 2  # a positive target moves to 0.9
    expected = -(t * F.logsigmoid(z) + (1 - t) * F.logsigmoid(-z))
    assert task_loss(z, torch.tensor([1]), "binary", 0.2).item() == pytest.approx(expected.item(), rel=1e-6)

import math

import pytest
import torch

from trainwise.config import OptimConfig, ScheduleConfig
from trainwise.optim import build_optimizer, build_scheduler, lr_factor_fn, param_groups, scaled_lr


def trajectory(make_opt, steps=5):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    opt = make_opt(model.parameters())
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("cfg, reference", [
    (OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (OptimConfig(name="sgd", lr=0.1, momentum=0.0), lambda p: torch.optim.SGD(p, lr=0.1)),
    (OptimConfig(name="adagrad", lr=0.05), lambda p: torch.optim.Adagrad(p, lr=0.05)),
    (OptimConfig(name="rmsprop", lr=0.01, alpha=0.9, momentum=0.5),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, eps=1e-8)),
    (OptimConfig(name="adam", lr=0.01, betas=(0.8, 0.99)), lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99))),
    (OptimConfig(name="adamw", lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
])
def test_optimizers_match_torch(cfg, reference):
    ours = trajectory(lambda p: build_optimizer(p, cfg, cfg.lr))
    theirs = trajectory(reference)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_no_decay_for_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    model[0].weight.requires_grad_(False)  # frozen parameters are left out
    groups = param_groups(model, 0.05, True)
    decayed, exempt = groups
    assert decayed["weight_decay"] == 0.05 and [p.ndim for p in decayed["params"]] == [2]
    assert exempt["weight_decay"] == 0.0 and all(p.ndim == 1 for p in exempt["params"]) and len(exempt["params"]) == 4


def test_lr_scaling_rules():
    assert scaled_lr(OptimConfig(lr=0.1, scale_lr="linear", base_batch_size=256), 1024) == pytest.approx(0.4)
    assert scaled_lr(OptimConfig(lr=0.1, scale_lr="sqrt", base_batch_size=256), 1024) == pytest.approx(0.2)
    assert scaled_lr(OptimConfig(lr=0.1), 1024) == 0.1


def lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def fresh_opt(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


SPE = 4  # steps per epoch


@pytest.mark.parametrize("cfg, reference", [
    (ScheduleConfig(name="step", step_size=2, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5)),
    (ScheduleConfig(name="exponential", gamma=0.7), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.7)),
])
def test_epoch_schedules_match_torch_stepped_per_epoch(cfg, reference):
    opt = fresh_opt()
    ours = lrs(build_scheduler(opt, cfg, SPE, 6), opt, 6 * SPE)
    opt2 = fresh_opt()
    sched = reference(opt2)
    theirs = []
    for _ in range(6):
        theirs += [opt2.param_groups[0]["lr"]] * SPE
        opt2.step()
        sched.step()
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_cosine_matches_torch_per_step():
    opt = fresh_opt()
    ours = lrs(build_scheduler(opt, ScheduleConfig(name="cosine", min_lr_factor=0.1), SPE, 5), opt, 5 * SPE)
    opt2 = fresh_opt()
    theirs = lrs(torch.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=5 * SPE, eta_min=0.01), opt2, 5 * SPE)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_warmup_matches_linear_lr_then_cosine():
    cfg = ScheduleConfig(name="cosine", warmup_epochs=1, warmup_start_factor=0.1)
    f = lr_factor_fn(cfg, SPE, 10 * SPE)
    opt = fresh_opt()
    warm = lrs(torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=SPE), opt, SPE)
    assert [0.1 * f(s) for s in range(SPE)] == pytest.approx(warm, rel=1e-12)
    assert f(SPE) == pytest.approx(1.0)  # cosine starts at the peak right after warm-up
    assert f(10 * SPE) == pytest.approx(0.0, abs=1e-12)
    mid = SPE + (10 * SPE - SPE) // 2
    assert f(mid) == pytest.approx((1 + math.cos(math.pi * (mid - SPE) / (9 * SPE))) / 2)


def test_onecycle_follows_the_formula():
    cfg = ScheduleConfig(name="onecycle", max_lr=1.0, pct_start=0.25, div_factor=10, final_div_factor=100)
    opt = fresh_opt(lr=1.0)
    total = 10 * SPE
    seq = lrs(build_scheduler(opt, cfg, SPE, 10), opt, total)
    peak = int(0.25 * total) - 1  # torch counts the phase end as pct_start * total - 1
    assert seq[0] == pytest.approx(0.1)  # max_lr / div_factor
    assert seq[peak] == pytest.approx(1.0)  # max_lr at the end of the rise
    assert max(seq) == pytest.approx(1.0)
    end_lr = 0.1 / 100
    assert opt.param_groups[0]["lr"] == pytest.approx(end_lr, rel=1e-6) or seq[-1] == pytest.approx(end_lr, rel=0.05)
    # cosine annealing in between: halfway through the rise the lr is the mean of the ends
    half = peak / 2
    lo, hi = int(half), int(half) + 1
    assert seq[lo] < 0.55 < seq[hi]


def test_plateau_reduces_on_stall():
    opt = fresh_opt()
    sched = build_scheduler(opt, ScheduleConfig(name="plateau", patience=1, factor=0.5), SPE, 10)
    for v in [1.0, 0.9, 0.95, 0.96]:
        sched.step(v)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)

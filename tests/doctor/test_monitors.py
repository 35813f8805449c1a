"""Monitor callbacks in real short runs (the test loop fires trainwise's events in core.py's order)."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from make_runs import Bugs, train
from torch import nn

from trainwise.callbacks.activations import ActivationMonitor
from trainwise.callbacks.grad_norms import GradNormMonitor
from trainwise.callbacks.monitors import make_monitors
from trainwise.callbacks.nan_guard import NanGuard
from trainwise.callbacks.update_ratios import UpdateRatioMonitor
from trainwise.config import Config, build_config
from trainwise.core import Callback, Event, State
from trainwise.history import History

SHORT = {"train.epochs": 3}


def _state(model: nn.Module, optimizer: torch.optim.Optimizer) -> State:
    return State(config=Config(), model=model, optimizer=optimizer, scheduler=None, history=History(),
                 device=torch.device("cpu"), task="multiclass", num_classes=3)


def _one_step(monitors: list[Callback], lr: float = 0.1) -> tuple[State, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One SGD step on a fixed batch, firing the events around it; returns (state, grads, weights before)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
    state = _state(model, opt)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for event in (Event.FIT_START, Event.EPOCH_START, Event.BATCH_START):
        for m in monitors:
            m.on_event(event, state)
    loss = nn.functional.cross_entropy(model(x), y)
    state.loss = loss
    for m in monitors:
        m.on_event(Event.AFTER_LOSS, state)
    loss.backward()
    for m in monitors:
        m.on_event(Event.AFTER_BACKWARD, state)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    state.step += 1
    for event in (Event.STEP_END, Event.EVAL_END):
        for m in monitors:
            m.on_event(event, state)
    return state, grads, before


def _layer_norm(tensors: dict[str, torch.Tensor], layer: str) -> float:
    return math.sqrt(sum(float(t.pow(2).sum()) for n, t in tensors.items() if n.startswith(layer + ".")))


def test_grad_norms_match_a_direct_computation():
    state, grads, _ = _one_step([GradNormMonitor(every_n_steps=1)])
    rec = state.record
    for layer in ("0", "2"):
        assert rec[f"grad_norm/{layer}"] == pytest.approx(_layer_norm(grads, layer), rel=1e-5)
    total = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
    assert rec["grad_norm"] == pytest.approx(total, rel=1e-5)


def test_update_ratio_of_plain_sgd_is_lr_times_grad_over_weight():
    state, grads, before = _one_step([UpdateRatioMonitor(every_n_steps=1)], lr=0.1)
    for layer in ("0", "2"):
        expected = 0.1 * _layer_norm(grads, layer) / _layer_norm(before, layer)
        assert state.record[f"update_ratio/{layer}"] == pytest.approx(expected, rel=1e-4)


def test_records_carry_the_documented_keys():
    run = train(SHORT, callbacks=make_monitors(build_config({"monitors": {"every_n_steps": 7}})))
    keys = set(run.records[-1])
    assert {"grad_norm", "grad_norm/net.0", "grad_norm/net.2", "update_ratio/net.0", "update_ratio/net.2",
            "dead_frac/net.0", "nonfinite_steps"} <= keys
    assert run.records[-1]["nonfinite_steps"] == 0
    assert all(r["update_ratio/net.0"] > 0 for r in run.records)


def test_only_every_kth_step_is_sampled_and_evaluation_is_not():
    grad, act = GradNormMonitor(every_n_steps=10), ActivationMonitor(every_n_steps=10)
    run = train({"train.epochs": 1}, callbacks=[grad, act])  # digits: 23 steps -> steps 0, 10, 20
    assert set(grad._means.counts().values()) == {3.0}
    assert set(act._means.counts().values()) == {3.0}  # the validation forward pass ran without hooks
    assert all(not m._forward_hooks for m in run.state.model.modules())


def test_dead_and_saturated_fractions_in_real_runs():
    dead = train(SHORT, Bugs(bias_init=-5.0), [ActivationMonitor(every_n_steps=3)])
    assert dead.records[-1]["dead_frac/net.0"] == pytest.approx(1.0, abs=0.05)
    alive = train(SHORT, callbacks=[ActivationMonitor(every_n_steps=3)])
    assert alive.records[-1]["dead_frac/net.0"] < 0.2
    raw = train({**SHORT, "model.activation": "sigmoid", "data.normalize": False}, Bugs(input_scale=16.0), [ActivationMonitor(3)])
    normal = train({**SHORT, "model.activation": "sigmoid"}, callbacks=[ActivationMonitor(3)])
    assert raw.records[-1]["saturated_frac/net.0"] > 0.5 > normal.records[-1]["saturated_frac/net.0"]


@contextlib.contextmanager
def _no_host_sync():
    """Make every Python-level device-to-host read raise, as a CUDA sync would cost."""
    names = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy")
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def boom(*args, **kwargs):
        raise AssertionError("host sync on the hot path")

    try:
        for n in names:
            setattr(torch.Tensor, n, boom)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


class NoSync(Callback):
    """Runs the wrapped callback's per-step events under ``_no_host_sync``."""

    HOT = (Event.BATCH_START, Event.AFTER_LOSS, Event.AFTER_BACKWARD, Event.STEP_END)

    def __init__(self, inner: Callback):
        self.inner, self.order = inner, inner.order

    def on_event(self, event: Event, state: State) -> None:
        with _no_host_sync() if event in self.HOT else contextlib.nullcontext():
            self.inner.on_event(event, state)


def test_monitors_and_the_stop_guard_never_sync_inside_an_epoch():
    inner = [GradNormMonitor(5), UpdateRatioMonitor(5), ActivationMonitor(5), NanGuard("stop", every_n_steps=10_000)]

    class SkipFirstSample(NoSync):  # the stop guard reads its flag on sampled steps (step 0 here) by design
        def on_event(self, event: Event, state: State) -> None:
            if isinstance(self.inner, NanGuard) and state.step == 0:
                self.inner.on_event(event, state)
            else:
                super().on_event(event, state)

    run = train({"train.epochs": 2}, callbacks=[SkipFirstSample(cb) for cb in inner])
    assert run.records[-1]["grad_norm"] > 0 and "dead_frac/net.0" in run.records[-1]


class PoisonAt(Callback):
    """Makes the inputs NaN on the given attempted steps (0-based), as a corrupt batch would."""

    order = -1000

    def __init__(self, calls: set[int] | range):
        self.calls, self.count = set(calls), 0

    def on_batch_start(self, state: State) -> None:
        if self.count in self.calls:
            state.inputs = (state.inputs[0] * float("nan"),)
        self.count += 1


def test_stop_policy_names_the_first_bad_step_when_sampled():
    run = train(SHORT, callbacks=[PoisonAt({30}), NanGuard("stop", every_n_steps=1)])
    assert run.state.stop and len(run.records) == 2  # 23 steps per epoch: step 31 is in epoch 2
    assert "optimizer step 31 (epoch 2)" in run.state.stop_reason and "optim.lr" in run.state.stop_reason
    assert run.records[1]["nonfinite_steps"] >= 1


def test_stop_policy_names_the_sampled_step_itself():
    # every 10 steps: steps 0, 10, 20 in epoch 1 and 30 in epoch 2 are checked; call 30 is step 31
    run = train(SHORT, callbacks=[PoisonAt({30}), NanGuard("stop", every_n_steps=10)])
    assert "optimizer step 31 (epoch 2)" in run.state.stop_reason


def test_stop_policy_catches_an_unsampled_bad_step_at_the_epoch_end():
    # Unsampled steps are not checked one by one: the epoch's summed training loss carries the NaN.
    run = train(SHORT, callbacks=[PoisonAt({30}), NanGuard("stop", every_n_steps=1000)])
    assert run.state.stop and len(run.records) == 2
    assert "NaN/Inf training loss in epoch 2" in run.state.stop_reason and "optim.lr" in run.state.stop_reason
    assert run.records[1]["nonfinite_steps"] >= 1


def test_skip_policy_rides_over_a_bad_batch():
    run = train(SHORT, callbacks=[PoisonAt({30}), NanGuard("skip")])
    assert not run.state.stop and len(run.records) == 3
    assert [r["nonfinite_steps"] for r in run.records] == [0, 1, 0]
    assert all(torch.isfinite(p).all() for p in run.state.model.parameters())
    assert run.records[-1]["val_acc"] > 0.8


def test_a_skipped_step_has_no_update_ratio():
    ratios = UpdateRatioMonitor(every_n_steps=1)
    train({"train.epochs": 2}, callbacks=[PoisonAt({30}), NanGuard("skip"), ratios])
    assert set(ratios._means.counts().values()) == {22.0}  # epoch 2: 23 attempted steps, one skipped


def test_skip_policy_stops_when_a_whole_epoch_is_bad():
    run = train(SHORT, callbacks=[PoisonAt(range(23, 46)), NanGuard("skip")])
    assert run.state.stop and "every step of epoch 2" in run.state.stop_reason


def test_rollback_restores_the_last_good_epoch_and_lowers_the_lr():
    snapshots: dict[str, dict] = {}

    class Spy(Callback):
        order = -40  # right after the guard

        def on_epoch_end(self, state: State) -> None:
            if state.epoch == 1:
                snapshots["epoch1"] = {k: v.clone() for k, v in state.model.state_dict().items()}

        def on_after_backward(self, state: State) -> None:
            if state.skip_step and "restored" not in snapshots:
                snapshots["restored"] = {k: v.clone() for k, v in state.model.state_dict().items()}

    guard = NanGuard("rollback", lr_factor=0.5, max_rollbacks=3)
    run = train(SHORT, callbacks=[PoisonAt({30}), guard, Spy()])
    assert all(torch.equal(snapshots["epoch1"][k], snapshots["restored"][k]) for k in snapshots["epoch1"])
    assert run.records[1]["event"] == "nan_rollback" and run.records[1]["nan_rollbacks"] == 1
    assert run.state.lr_scale == 0.5 and run.records[2]["lr"] == pytest.approx(5e-4)
    assert not run.state.stop and guard.state_dict() == {"rollbacks": 1, "lr_scale": 0.5}


def test_rollback_gives_up_after_the_limit():
    run = train(SHORT, callbacks=[PoisonAt(range(30, 200)), NanGuard("rollback", max_rollbacks=2)])
    assert run.state.stop and "after 2 rollbacks" in run.state.stop_reason


def _sample(monitor: GradNormMonitor, seed: int) -> None:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    state = _state(model, torch.optim.SGD(model.parameters(), lr=0.1))
    if monitor._index is None:
        monitor.on_fit_start(state)
    monitor._index = type(monitor._index)(model)
    nn.functional.mse_loss(model(torch.randn(5, 3)), torch.randn(5, 2)).backward()
    monitor.on_after_backward(state)


def test_epoch_means_survive_a_mid_epoch_resume():
    a, b = GradNormMonitor(1), GradNormMonitor(1)
    for seed in (0, 1):
        _sample(a, seed)
    b.load_state_dict(a.state_dict())
    b.on_epoch_start(None)  # type: ignore[arg-type]  # the trainer may fire EPOCH_START on resume
    for m in (a, b):
        _sample(m, 2)
    assert a._means.means() == b._means.means()  # the same numbers reduced the same way: equal, not close
    assert set(b._means.counts().values()) == {3.0}


def test_running_sums_of_an_older_checkpoint_add_to_the_new_samples():
    """Checkpoints written before the samples were kept hold (sums, counts); a resumed epoch adds its samples to them."""
    one = GradNormMonitor(1)
    _sample(one, 2)
    single = one._means.means()
    keys = list(single)
    old_sums, old_counts = [2.0 * (i + 1) for i in range(len(keys))], [2.0] * len(keys)  # two samples of 1, 2, ...
    resumed = GradNormMonitor(1)
    resumed.load_state_dict({"groups": [[keys, old_sums, old_counts]]})
    resumed.on_epoch_start(None)  # type: ignore[arg-type]
    _sample(resumed, 2)
    expected = {k: (s + single[k]) / 3.0 for k, s in zip(keys, old_sums)}
    assert resumed._means.means() == pytest.approx(expected, rel=1e-12)
    assert resumed.state_dict()["groups"] == [[keys, old_sums, old_counts]]  # written again as they came


def test_an_epoch_end_checkpoint_carries_nothing_into_the_next_epoch():
    """Resume from a checkpoint written after EVAL_END must start the next epoch's means from zero."""
    grad = GradNormMonitor(every_n_steps=1)
    train({"train.epochs": 1}, callbacks=[grad])
    assert grad.state_dict() == {"groups": []}
    fresh = GradNormMonitor(every_n_steps=1)
    fresh.load_state_dict(grad.state_dict())
    assert not fresh._means._restored


def test_make_monitors_follows_the_config():
    kinds = lambda cfg: [type(c).__name__ for c in make_monitors(build_config(cfg))]  # noqa: E731
    assert kinds({}) == ["GradNormMonitor", "UpdateRatioMonitor", "ActivationMonitor", "NanGuard"]
    assert kinds({"monitors": {"grad_norms": False, "activations": False}}) == ["UpdateRatioMonitor", "NanGuard"]
    assert kinds({"monitors": {"enabled": False}}) == []
    guard = make_monitors(build_config({"monitors": {"nan_policy": "rollback", "nan_max_rollbacks": 5}}))[-1]
    assert isinstance(guard, NanGuard) and (guard.policy, guard.max_rollbacks) == ("rollback", 5)


def test_live_doctor_reports_each_finding_once_and_can_stop_the_run():
    from trainwise.callbacks.doctor import DoctorCallback

    lines: list[str] = []
    doctor = DoctorCallback(emit=lines.append, stop_on_error=True)
    run = train({"optim.lr": 1e-5, "train.epochs": 12}, callbacks=[doctor])
    assert run.state.stop and run.state.stop_reason.startswith("doctor: lr_too_low")
    assert len(run.records) < 12  # stopped as soon as the error was clear
    assert sum("lr_too_low" in line for line in lines) == 1
    # A missed expectation stops the run too, at the epoch it is missed.
    missed = DoctorCallback(emit=lines.append, stop_on_error=True)
    run = train({"optim.lr": 1e-5, "train.epochs": 12, "doctor.expect": ["val_acc >= 0.9 at epoch 2"]}, callbacks=[missed])
    assert len(run.records) == 2 and "expectation missed: 'val_acc >= 0.9 at epoch 2'" in run.state.stop_reason
    assert any("expectation missed: 'val_acc >= 0.9 at epoch 2'" in line for line in lines)
    resumed = DoctorCallback(emit=lines.append)
    resumed.load_state_dict(doctor.state_dict())
    assert resumed.state_dict() == doctor.state_dict()


def test_live_doctor_is_silent_on_a_clean_run():
    from trainwise.callbacks.doctor import DoctorCallback

    lines: list[str] = []
    run = train({"train.epochs": 10}, callbacks=[DoctorCallback(emit=lines.append)])
    assert lines == [] and run.state.extras["diagnosis"].codes == ["healthy"]

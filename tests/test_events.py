"""The order of events in a run, the order of callbacks within an event, and Trainer.describe_loop (short digits runs)."""

import io

import pytest

import trainwise
from tests.helpers import run_cli
from trainwise.config import Config
from trainwise.core import ORDER, Callback, Event
from trainwise.trainer import Trainer


class Recorder(Callback):
    """Records every event it sees (an on_event override receives them all)."""

    def __init__(self, order=0, log=None):
        self.order, self.log = order, log if log is not None else []

    def on_event(self, event, state):
        self.log.append((event, self.order))


def small(quiet, **extra):
    return Config().replace({**quiet, "model.hidden": [16], "train.epochs": 2, "data.batch_size": 256, **extra})


def test_events_fire_in_the_documented_order(quiet):
    rec = Recorder()
    run = trainwise.fit(small(quiet), callbacks=[rec])
    steps = run.history[0]["step"]
    step = [Event.BATCH_START, Event.AFTER_LOSS, Event.AFTER_BACKWARD, Event.STEP_END]
    epoch = [Event.EPOCH_START, *step * steps, Event.EVAL_END, Event.EPOCH_END]
    expected = [Event.FIT_START, *epoch * 2, Event.FIT_END, Event.RUN_END]
    assert [e for e, _ in rec.log] == expected


def test_an_error_fires_exception_instead_of_the_rest(quiet):
    class Fails(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        trainwise.fit(small(quiet), callbacks=[rec, Fails()])
    events = [e for e, _ in rec.log]
    assert events[-1] is Event.EXCEPTION and events.count(Event.STEP_END) == 3
    assert Event.FIT_END not in events and Event.RUN_END not in events


def test_callbacks_run_by_order_within_each_event(quiet, tmp_path):
    log = []
    trainwise.fit(small(quiet, **{"train.epochs": 1}), callbacks=[Recorder(7, log), Recorder(-7, log), Recorder(0, log)])
    firings = [log[i:i + 3] for i in range(0, len(log), 3)]  # each event reaches the three in turn
    assert all(len({e for e, _ in f}) == 1 and [o for _, o in f] == [-7, 0, 7] for f in firings), firings[:3]
    assert {f[0][0] for f in firings} == set(Event) - {Event.EXCEPTION}


def test_describe_loop_shows_each_events_callbacks_in_running_order(quiet, tmp_path):
    cfg = small(quiet, **{"early_stopping.enabled": True, "ema.enabled": True})

    class Mine(Callback):
        order = 20

        def on_epoch_end(self, state):
            pass

    trainer = Trainer(cfg, callbacks=[Mine()], run_dir=tmp_path / "r")
    text = trainer.describe_loop(file=io.StringIO())
    rows = dict(line.split(None, 1) for line in text.splitlines())
    assert set(rows) == {e.name for e in Event}
    epoch_end = rows["EPOCH_END"].split(", ")
    assert epoch_end.index(f"EarlyStopping({ORDER['early_stopping']})") < epoch_end.index(
        f"BestCheckpoint({ORDER['best_checkpoint']})") < epoch_end.index("Mine(20)")
    assert "Mine" not in rows["STEP_END"] and f"EMA({ORDER['ema']})" in rows["STEP_END"]


def test_cli_show_loop_prints_the_loop_without_training(tmp_path):
    result = run_cli("train", "--set", "ema.enabled=true", "--set", "train.epochs=1", "--show-loop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "STEP_END" in result.stdout and "EMA(5)" in result.stdout
    assert not (tmp_path / "runs").exists()


class SamplesEveryThird(Callback):
    """Declares that its step handlers act at every third step only, and records where it is called."""

    sample_every = 3

    def __init__(self):
        self.calls = []

    def on_batch_start(self, state):
        self.calls.append(("batch_start", state.step))

    def on_after_backward(self, state):
        self.calls.append(("after_backward", state.step))

    def on_step_end(self, state):
        self.calls.append(("step_end", state.step))

    def on_eval_end(self, state):
        self.calls.append(("eval_end", state.step))


def test_a_sampling_callbacks_step_handlers_run_at_its_steps_only(quiet):
    cb = SamplesEveryThird()
    run = trainwise.fit(small(quiet, **{"data.batch_size": 128}), callbacks=[cb])
    steps = run.history[-1]["step"]
    sampled = [s for s in range(steps) if s % 3 == 0]
    assert [s for e, s in cb.calls if e == "batch_start"] == sampled
    assert [s for e, s in cb.calls if e == "after_backward"] == sampled
    assert [s for e, s in cb.calls if e == "step_end"] == [s + 1 for s in sampled]  # the step has advanced by then
    assert [e for e, _ in cb.calls].count("eval_end") == 2  # other events reach it every time


def test_monitors_record_the_same_values_when_every_handler_is_called(quiet):
    """Leaving the monitors' step handlers out at the steps they do not sample changes none of their values
    (ReLU and tanh nets, the NaN guard's skip policy, which decides at every step)."""
    class EveryHandler(Trainer):
        def _build_tables(self):
            table = super()._build_tables()
            self._plain = self._dispatch
            return table

    for extra in ({"model.activation": "relu"}, {"model.activation": "tanh", "monitors.nan_policy": "skip"}):
        cfg = small(quiet, **{"data.batch_size": 64, "train.epochs": 3, "monitors.every_n_steps": 4, **extra})
        runs = [cls(cfg).fit() for cls in (Trainer, EveryHandler)]
        for a, b in zip(*(r.history.records for r in runs)):
            monitored = {k: v for k, v in a.items() if "/" in k or k in ("grad_norm", "nonfinite_steps")}
            assert len(monitored) > 3 and monitored == {k: b[k] for k in monitored}
            assert {k: v for k, v in a.items() if k not in ("time_s", "samples_per_s")} == {
                k: v for k, v in b.items() if k not in ("time_s", "samples_per_s")}

"""Search on real data: the space file, the search directory, pruning, continuing an interrupted study,
two worker processes on one study, journal storage, the CLI."""

import csv
import json

import optuna
import pytest

from tests.tools.cli import invoke
from trainwise import load_config
from trainwise.core import State
from trainwise.errors import UserError
from trainwise.tools import search as search_module
from trainwise.tools.search import (Param, PruningCallback, SearchSpec, edge_notes, load_space, make_objective, open_storage,
                                    parse_space, search, storage_url)

TINY = {"train.threads": 1, "model.hidden": [16], "train.epochs": 3}
SPACE = """
[optim.lr]
low = 1e-3
high = 3e-2
log = true

[model.hidden]
choices = [[16], [32, 16]]
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    return load_space(path)


def read_trials(search_dir):
    with open(search_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_space_file_kinds_grids_and_mistakes():
    params = {p.key: p for p in parse_space({"optim": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}},
                                             "data": {"batch_size": {"choices": [32, 64]}},
                                             "train": {"epochs": {"low": 2, "high": 4}},
                                             "model": {"dropout": {"low": 0.0, "high": 0.3, "step": 0.1},
                                                       "hidden": {"choices": [[64], [128, 64]]}}})}
    assert [params[k].kind for k in ("optim.lr", "data.batch_size", "train.epochs", "model.dropout")] == ["float", "choice", "int", "float"]
    assert params["train.epochs"].grid() == [2, 3, 4] and params["model.dropout"].grid() == [0.0, 0.1, 0.2, 0.3]
    assert params["model.dropout"].decode(0.1 * 3) == 0.3  # float steps do not leak 0.30000000000000004 into configs
    hidden = params["model.hidden"]
    assert hidden.grid() == ["[64]", "[128, 64]"] and hidden.decode("[128, 64]") == [128, 64]
    with pytest.raises(UserError, match="grid sampler cannot enumerate"):
        params["optim.lr"].grid()
    for bad, fragment in [({"optim": {"lr": {"low": 0.0, "high": 1.0, "log": True}}}, "log scale needs low > 0"),
                          ({"optim": {"lr": {"low": 1.0, "high": 0.1}}}, "bad range"),
                          ({"optim": {"lr": {"low": 0.1, "high": 1.0, "scale": "log"}}}, "unknown field 'scale'"),
                          ({"optim": {"lr": 0.1}}, "not a table"), ({}, "no parameters")]:
        with pytest.raises(UserError, match=fragment):
            parse_space(bad)


def test_a_best_value_at_the_edge_of_its_range_is_noted():
    lr, drop = Param("optim.lr", "float", 1e-4, 1e-1, log=True), Param("model.dropout", "float", 0.0, 0.5)
    notes = edge_notes([lr, drop, Param("data.batch_size", "choice", choices=(32, 64))],
                       {"optim.lr": 0.08, "model.dropout": 0.25, "data.batch_size": 64})
    assert len(notes) == 1 and "optim.lr = 0.08 lies at the upper edge" in notes[0]
    assert "lower edge" in edge_notes([lr], {"optim.lr": 1.5e-4})[0]  # log scale: 1.5e-4 is near 1e-4


def test_unknown_config_key_fails_before_any_trial(tmp_path):
    with pytest.raises(UserError, match="unknown key 'optim.learning_rate'"):
        search(load_config(None, TINY), [Param("optim.learning_rate", "float", 1e-3, 1e-2)], 2, tmp_path)
    with pytest.raises(UserError, match="cannot search on test_acc"):
        search(load_config(None, TINY), [Param("optim.lr", "float", 1e-3, 1e-2)], 2, tmp_path, metric="test_acc")


def test_pruning_callback_reports_each_epoch_and_stops_the_run():
    class FakeTrial:
        reports = []

        def report(self, value, step):
            self.reports.append((value, step))

        def should_prune(self):
            return len(self.reports) == 2

    state = State(config=None, model=None, optimizer=None, scheduler=None, history=None, device=None, task="multiclass", num_classes=2)
    callback = PruningCallback(FakeTrial(), "val_loss")
    for epoch, loss in ((1, 0.9), (2, 0.8)):
        state.epoch, state.record = epoch, {"val_loss": loss}
        callback.on_epoch_end(state)
    assert FakeTrial.reports == [(0.9, 1), (0.8, 2)] and callback.pruned_at == 2 and state.stop
    state.record = {"train_loss": 1.0}
    with pytest.raises(UserError, match="search metric 'val_loss' is not in the History"):
        callback.on_epoch_end(state)


def test_a_pruned_trial_stops_early(tmp_path, space):
    spec = SearchSpec(config=load_config(None, TINY).to_dict(), space=[vars(p) for p in space], out=str(tmp_path), storage="",
                      study="s", metric="val_loss", sampler="random", pruner="none", seed=0)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=2))  # prunes at epoch 2
    study.optimize(make_objective(spec), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and sorted(trial.intermediate_values) == [1, 2]
    history = (tmp_path / "trials" / "trial-0000" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2  # of 3 epochs
    assert "pruned by the search at epoch 2" in json.loads((tmp_path / "trials" / "trial-0000" / "summary.json").read_text())["stop_reason"]


def test_search_directory_and_continuing_an_interrupted_study(tmp_path, space, monkeypatch):
    class InterruptTrial1(PruningCallback):
        def on_epoch_end(self, state):
            super().on_epoch_end(state)
            if self.trial.number == 1 and state.epoch == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of trial 1

    monkeypatch.setattr(search_module, "PruningCallback", InterruptTrial1)
    cfg = load_config(None, TINY)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, space, 3, tmp_path, sampler="random", pruner="median")
    assert [r["state"] for r in read_trials(tmp_path)] == ["COMPLETE", "INTERRUPTED"]  # the outputs were written anyway

    monkeypatch.setattr(search_module, "PruningCallback", PruningCallback)
    result = search(cfg, space, 3, tmp_path, sampler="random", pruner="median")  # the same command again
    rows = read_trials(tmp_path)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"] and rows[1]["state"] == "INTERRUPTED"
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows) == 3  # the interrupted trial did not count
    assert rows[0]["optim.lr"] != rows[2]["optim.lr"]  # the continued study does not replay its proposals
    for name in ("optimization_history.png", "param_importances.png", "intermediate_values.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    assert all((tmp_path / "trials" / f"trial-{n:04d}" / "config.toml").is_file() for n in range(4))

    best = json.loads((tmp_path / "best.json").read_text())
    best_cfg = load_config(tmp_path / "best_config.toml")  # ready to train
    assert best_cfg.optim.lr == best["params"]["optim.lr"] and best_cfg.model.hidden == best["params"]["model.hidden"]
    assert best["value"] == min(float(r["val_loss"]) for r in rows if r["state"] == "COMPLETE")
    assert "best config:" in result.to_text()

    with pytest.raises(UserError, match="made with another space"):
        search(cfg, space[:1], 3, tmp_path)


def test_two_worker_processes_share_one_sqlite_study(tmp_path, space):
    result = search(load_config(None, TINY), space, 4, tmp_path, sampler="random", pruner="none", workers=2)
    trials = result.study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # two processes, one study
    assert (tmp_path / "study.db").is_file() and len({t.user_attrs["run_dir"] for t in trials}) == 4


def test_journal_storage(tmp_path, space):
    search(load_config(None, TINY), space, 2, tmp_path, sampler="tpe", pruner="asha", storage="journal")
    assert (tmp_path / "journal.log").is_file() and len(read_trials(tmp_path)) == 2
    study = optuna.load_study(study_name=tmp_path.name, storage=open_storage(storage_url("journal", tmp_path)))
    assert len(study.trials) == 2


def test_cli_grid_search_stops_at_the_grid_size(tmp_path):
    (tmp_path / "space.toml").write_text("[optim.lr]\nchoices = [0.001, 0.01]\n")
    out = tmp_path / "search"
    result = invoke("search", "--space", str(tmp_path / "space.toml"), "--trials", "5", "--sampler", "grid", "--pruner", "none",
                    "--set", "model.hidden=[16]", "--set", "train.epochs=2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "2 complete" in result.stdout and len(read_trials(out)) == 2
    assert sorted(float(r["optim.lr"]) for r in read_trials(out)) == [0.001, 0.01]
    assert invoke("search", "--space", str(tmp_path / "none.toml"), "--out", str(out)).exit_code == 2
    assert invoke("search", "--space", str(tmp_path / "space.toml"), "--sampler", "bayes", "--out", str(out)).exit_code == 2

"""trainwise fix on real digits runs: a broken run repaired, a healthy one left alone, a fix a user's model
cannot take skipped with the reason, bad options refused in one line."""

import json
import sys
import textwrap

import pytest

import trainwise
from tests.tools.cli import invoke

SMALL = {"data__name": "digits", "data__val_fraction": 0.2, "model__hidden": [64], "train__epochs": 8,
         "train__progress": "none", "train__threads": 1, "train__report": False}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """AdamW at LR 0.3 (300x its usual start): the ReLUs die and the model ends at chance."""
    out = tmp_path_factory.mktemp("broken") / "run"
    run = trainwise.fit(out=out, **(SMALL | {"optim__lr": 0.3, "model__hidden": [128, 128]}))
    assert run.history.records[-1]["val_acc"] < 0.3, "the planted fault did not show"
    return out


def test_broken_run_is_repaired_and_the_chain_is_written(broken, tmp_path):
    out = tmp_path / "attempts"
    chain = trainwise.fix(broken, rounds=2, out=out)
    first = chain.rounds[0]
    assert first["finding"] in {"stuck_at_chance", "lr_too_high", "dead_units", "prediction_collapse"}
    assert first["kept"] and first["after"] > first["before"] + 0.5
    assert chain.final["val"] >= 0.8 and chain.final["val"] == max(r["after"] for r in chain.rounds if r["kept"])
    # every attempt is a normal run directory carrying its one change on top of the run's config
    attempt = out / f"round-1-{first['finding']}"
    assert trainwise.load_config(attempt / "config.toml") == trainwise.load_config(broken / "config.toml", [first["change"]])
    assert (attempt / "history.jsonl").is_file() and (attempt / "summary.json").is_file()
    # test untouched during the chain: only the final run has a test score, written at the end
    saved = json.loads((out / "fix.json").read_text())
    assert saved["noise"]["source"] == "spread" and saved["rounds"][0]["change"] == first["change"]
    assert saved["final"]["test"]["acc"] > saved["original"]["test"]["acc"] + 0.5
    for r in chain.rounds:
        has_test = "test" in json.loads((tmp_path / r["run_dir"] / "summary.json").read_text())
        assert has_test == (r["run_dir"] == chain.final["run_dir"])
    assert chain.extra_runs == len(chain.rounds) and chain.extra_epochs == sum(r["epochs"] for r in chain.rounds)


def test_rejected_change_leaves_the_current_run(broken, tmp_path):
    """A change that does not beat the noise is not kept: the next round starts from the same config."""
    chain = trainwise.fix(broken, rounds=1, out=tmp_path / "a", propose=lambda current: iter([(None, "train.epochs=9")]))
    (only,) = chain.rounds  # one more epoch at chance is still chance
    assert not only["kept"] and only["gain"] <= only["threshold"] and only["threshold"] >= 0.005
    assert chain.final["run_dir"] == str(broken) and chain.changes == [] and chain.final["val"] == chain.original["val"]


def test_healthy_run_is_left_alone(tmp_path):
    run = trainwise.fit(out=tmp_path / "ok", optim__lr=2e-3, **SMALL)
    assert [f.code for f in run.findings if f.severity != "info"] == []
    chain = trainwise.fix(tmp_path / "ok")
    assert chain.rounds == [] and chain.extra_runs == 0 and chain.stop_reason.startswith("healthy")
    assert not any(p.name.startswith("round-") for p in (tmp_path / "ok" / "fix").iterdir())
    assert json.loads((tmp_path / "ok" / "fix" / "fix.json").read_text())["final"]["run_dir"] == str(tmp_path / "ok")


def test_fix_a_user_model_cannot_take_is_skipped_with_the_reason(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent("""
        import math, torch
        def narrow(input_shape, out_dim):  # two hidden units: most of them die
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), 2), torch.nn.ReLU(),
                                       torch.nn.Linear(2, out_dim))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("usermodels", None)
    trainwise.fit(out=tmp_path / "user", **(SMALL | {"model__name": "usermodels:narrow"}))
    chain = trainwise.fix(tmp_path / "user", rounds=1)
    model_fixes = [s for s in chain.skipped if s["change"].startswith("model.")]
    assert model_fixes, chain.skipped
    for s in model_fixes:
        assert "model.name=usermodels:narrow builds the same network" in s["reason"]
    assert chain.rounds and all(not r["change"].startswith("model.") for r in chain.rounds)


def test_a_model_instance_is_refused(broken):
    import torch

    with pytest.raises(trainwise.UserError, match="a function"):
        trainwise.fix(broken, model=torch.nn.Linear(64, 10))


@pytest.mark.parametrize("args, expected", [
    (["--rounds", "0"], "bad --rounds"),
    (["--budget-epochs", "0"], "bad --budget-epochs"),
    (["--metric", "test_acc"], "bad --metric"),
    (["--metric", "val_top5"], "no val_top5"),
    (["--noise", "guess"], "bad --noise"),
])
def test_bad_options_are_one_line_and_exit_2(broken, args, expected):
    result = invoke("fix", str(broken), *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output


def test_not_a_run_directory(tmp_path):
    result = invoke("fix", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_budget_stops_before_an_attempt_that_would_exceed_it(broken, tmp_path):
    result = invoke("fix", str(broken), "--budget-epochs", "5", "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "b" / "fix.json").read_text())
    assert saved["rounds"] == [] and "--budget-epochs 5" in saved["stop_reason"]


def test_cli_with_noise_from_a_repeat(broken, tmp_path):
    result = invoke("fix", str(broken), "--rounds", "1", "--noise", "repeat", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r" / "fix.json").read_text())
    assert saved["noise"]["source"] == "repeat" and (tmp_path / "r" / "repeat" / "history.jsonl").is_file()
    assert saved["extra_runs"] == 2 and saved["rounds"][0]["threshold"] >= saved["noise"]["value"]
    assert "noise from the repeat" in result.output and "round 1:" in result.output


class FailsAtNineEpochs(trainwise.Callback):
    """Stands in for a change the run cannot take (batch norm on a batch of one, ...)."""

    def on_fit_start(self, state):
        if state.config.train.epochs == 9:
            raise ValueError("Expected more than 1 value per channel when training")


def test_a_change_that_makes_the_run_fail_is_a_rejected_round(broken, tmp_path):
    chain = trainwise.fix(broken, rounds=1, out=tmp_path / "f", callbacks=lambda: [FailsAtNineEpochs()],
                          propose=lambda current: iter([(None, "train.epochs=9")]))
    (failed,) = chain.rounds
    assert failed["failed"].startswith("ValueError: Expected more than 1") and not failed["kept"]
    assert chain.final["run_dir"] == str(broken) and "the run failed" in chain.to_text()
    assert json.loads((tmp_path / "f" / "fix.json").read_text())["rounds"][0]["failed"]


def test_the_report_shows_the_chain(broken, tmp_path):
    from trainwise.report import render_report

    chain = trainwise.fix(broken, rounds=1, out=tmp_path / "c")
    html = render_report(broken, out=tmp_path / "report.html", repairs=chain.to_dict()).read_text()
    r = chain.rounds[0]
    assert "<h2>Repairs</h2>" in html and r["change"] in html and f"{r['after']:.4f}" in html and "noise from the spread" in html

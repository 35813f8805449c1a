"""trainwise fix on real digits runs: an LR fix takes its value from an LR range test on the run's model and data,
and a kept change that leaves the run healthy is followed a step further while it helps."""

import json

import pytest

import trainwise
from tests.tools.cli import invoke
from trainwise.autofix.lr_test import range_tested
from trainwise.autofix.applicable import Sources
from trainwise.autofix.score import short_of_fit, still_improving
from trainwise.doctor.finding import Finding
from trainwise.doctor.fixes import fmt

SMALL = {"data__name": "digits", "data__val_fraction": 0.2, "model__hidden": [64], "train__epochs": 8,
         "train__progress": "none", "train__threads": 1, "train__report": False}


@pytest.fixture(scope="module")
def crawling(tmp_path_factory):
    """AdamW at LR 1e-6 (1000x below its usual start): the loss barely moves in 8 epochs."""
    out = tmp_path_factory.mktemp("crawling") / "run"
    run = trainwise.fit(out=out, **(SMALL | {"optim__lr": 1e-6}))
    assert "lr_too_low" in [f.code for f in run.findings], [f.code for f in run.findings]
    assert run.history.records[-1]["val_acc"] < 0.5, "the planted fault did not show"
    return out


def _lr_rounds(chain):
    return [r for r in chain.rounds if r["change"].startswith("optim.lr=")]


def test_the_lr_fix_takes_the_range_tests_suggestion(crawling, tmp_path):
    chain = trainwise.fix(crawling, rounds=3, out=tmp_path / "a")
    first = _lr_rounds(chain)[0]
    test = first["lr_test"]
    assert first["finding"] == "lr_too_low" and test["used"] and test["doctor_change"].startswith("optim.lr=")
    assert first["change"] == f"optim.lr={fmt(test['suggestion'])}"
    assert 1e-4 <= test["suggestion"] <= 1e-2 and test["steps"] > 20 and test["rule"] in ("valley", "steepest")
    assert test["valley"] is None or test["loss_min_lr"] >= test["valley"]  # the valley lies before the curve's lowest point
    assert first["kept"] and first["after"] > first["before"] + 0.3
    # the curve is kept beside the attempt, and fix.json states the test's result
    assert (tmp_path / first["run_dir"] / "lr_find.json").is_file()
    saved = json.loads((tmp_path / "a" / "fix.json").read_text())
    assert saved["rounds"][chain.rounds.index(first)]["lr_test"]["suggestion"] == test["suggestion"]
    assert "LR range test" in chain.to_text() and f"suggestion {test['suggestion']:.3g} is used" in chain.to_text()


def test_without_the_range_test_the_doctors_value_is_used(crawling, tmp_path):
    chain = trainwise.fix(crawling, rounds=1, out=tmp_path / "b", lr_test=False, follow_through=False)
    assert all("lr_test" not in r for r in chain.rounds)
    findings = {f.code: f for f in (Finding.from_dict(d) for d in json.loads((crawling / "findings.json").read_text())["findings"])}
    lr_fix = next(f for f in findings["lr_too_low"].fixes if f.startswith("optim.lr="))
    assert [r["change"] for r in chain.rounds if r["finding"] == "lr_too_low"] in ([], [lr_fix])


def test_a_kept_change_that_leaves_the_run_healthy_is_followed_through(crawling, tmp_path):
    chain = trainwise.fix(crawling, rounds=3, out=tmp_path / "c")
    lr = _lr_rounds(chain)
    healthy_at = next(i for i, r in enumerate(chain.rounds) if r["kept"] and r["findings_after"] == ["healthy"])
    records = [json.loads(line) for line in (tmp_path / chain.rounds[healthy_at]["run_dir"] / "history.jsonl").read_text().splitlines()]
    if not still_improving([r for r in records if "val_acc" in r], "val_acc") and not short_of_fit(records):  # levelled off: nothing to follow
        assert "levelled off" in chain.stop_reason and healthy_at == len(chain.rounds) - 1
        return
    follow = chain.rounds[healthy_at + 1]  # the run turned healthy with rounds left, still improving: one step further
    assert follow["follow_through"] and not chain.rounds[healthy_at]["follow_through"]
    assert follow["finding"] == chain.rounds[healthy_at]["finding"]
    if follow in lr:  # the LR half a decade further, the way the kept change moved it
        before, after = (float(r["change"].split("=")[1]) for r in (chain.rounds[healthy_at], follow))
        assert 2 <= after / before <= 3.5
    if not follow["kept"]:
        assert "did not help" in chain.stop_reason and follow is chain.rounds[-1]
    assert chain.final["val"] == max([chain.original["val"]] + [r["after"] for r in chain.rounds if r["kept"]])
    assert "a step further" in chain.to_text()


def test_still_improving_reads_the_trend_of_the_last_epochs_against_their_noise(crawling, tmp_path):
    flat = [json.loads(line) for line in (crawling / "history.jsonl").read_text().splitlines()]
    assert not still_improving([r for r in flat if "val_acc" in r], "val_acc")  # at chance, not moving
    slow = trainwise.fit(out=tmp_path / "slow", **(SMALL | {"optim__lr": 1e-4}))  # AdamW at 1e-4: still climbing at epoch 8
    climbing = slow.history.records
    assert climbing[-1]["val_acc"] - climbing[-5]["val_acc"] > 0.02 and still_improving(climbing, "val_acc")
    assert still_improving(climbing, "val_loss")  # losses fall
    assert not still_improving(climbing, "val_acc", restored_epoch=climbing[-1]["epoch"])  # early stopping stopped it


def test_no_follow_through_stops_at_healthy(crawling, tmp_path):
    chain = trainwise.fix(crawling, rounds=3, out=tmp_path / "d", follow_through=False)
    assert not any(r["follow_through"] for r in chain.rounds)
    assert chain.stop_reason.startswith("healthy after round") and chain.rounds[-1]["findings_after"] == ["healthy"]


def test_cli_and_api_make_the_same_chain(crawling, tmp_path):
    api = trainwise.fix(crawling, rounds=2, out=tmp_path / "api")
    result = invoke("fix", str(crawling), "--rounds", "2", "--out", str(tmp_path / "cli"))
    assert result.exit_code == 0, result.output
    cli = json.loads((tmp_path / "cli" / "fix.json").read_text())
    keys = ("change", "kept", "after", "follow_through")
    assert [[r[k] for k in keys] for r in cli["rounds"]] == [[r[k] for k in keys] for r in api.rounds]
    assert [r.get("lr_test", {}).get("suggestion") for r in cli["rounds"]] == [r.get("lr_test", {}).get("suggestion") for r in api.rounds]
    assert "LR range test" in result.output
    off = invoke("fix", str(crawling), "--rounds", "1", "--no-lr-test", "--no-follow-through", "--out", str(tmp_path / "off"))
    assert off.exit_code == 0, off.output
    assert all("lr_test" not in r for r in json.loads((tmp_path / "off" / "fix.json").read_text())["rounds"])


def test_a_suggestion_the_wrong_way_leaves_the_doctors_value(tmp_path):
    """A finding that says 'lower' on a run whose LR is already below the test's suggestion keeps the doctor's fix."""
    cfg = trainwise.load_config(None, ["data.name=digits", "data.val_fraction=0.2", "model.hidden=[64]", "optim.lr=1e-4",
                                       "train.threads=1", "train.progress=none"])
    finding = Finding("lr_too_high", "warning", (1, 1), {}, "swings", ["optim.lr=3e-5"])
    sources = Sources()
    change, info = range_tested(finding, "optim.lr=3e-5", cfg, sources, sources.build_data(cfg))
    assert change == "optim.lr=3e-5" and not info["used"] and info["suggestion"] > 1e-4 and "not below" in info["why"]
    # a finding that is not about the LR takes no test
    other = Finding("overfitting", "warning", (1, 1), {}, "gap", ["optim.lr=3e-5"])
    assert range_tested(other, "optim.lr=3e-5", cfg, sources, sources.build_data(cfg)) == ("optim.lr=3e-5", None)


def test_the_doctors_lr_replaced_by_the_range_test_stays_open_as_a_later_step(tmp_path, monkeypatch):
    """SGD at LR 10 on digits: the doctor's fix is optim.lr=0.05. When the range test's suggestion (here
    pinned at 0.02, the valley it gave a 1-D CNN at 3.0) replaces it and the run turns healthy, the step
    further (x3, on the 1-2-3-5 grid: 0.05) is the doctor's own value, never run: it must be tried, not
    skipped as if it had been."""
    import trainwise.autofix.lr_test as lr_test

    real = lr_test.range_tested

    def pinned(finding, change, cfg, sources, data):
        tested, info = real(finding, change, cfg, sources, data)
        if info and info.get("used"):
            key = tested.split("=")[0]
            info |= {"suggestion": 0.02, "loss_min_lr": max(info["loss_min_lr"], 0.1)}
            return f"{key}=0.02", info
        return tested, info

    monkeypatch.setattr(lr_test, "range_tested", pinned)
    run = trainwise.fit(out=tmp_path / "hot", **(SMALL | {"optim__name": "sgd", "optim__lr": 10.0}))
    first = next(f for f in run.findings if any(x.startswith("optim.lr=") for x in f.fixes))
    assert "optim.lr=0.05" in first.fixes, [(f.code, f.fixes) for f in run.findings]
    chain = trainwise.fix(tmp_path / "hot", rounds=2, out=tmp_path / "fix")
    lr = _lr_rounds(chain)
    assert lr[0]["change"] == "optim.lr=0.02" and lr[0]["kept"], chain.to_text()
    assert len(lr) == 2 and lr[1]["change"] == "optim.lr=0.05" and lr[1]["follow_through"], chain.to_text()

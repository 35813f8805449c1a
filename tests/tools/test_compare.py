"""compare on two real runs: config, metric and finding differences, text, HTML, JSON and the CLI."""

import json
from dataclasses import dataclass

import pytest

import trainwise
from tests.tools.cli import invoke
from trainwise.history import History
from trainwise.tools import compare as compare_module
from trainwise.tools.compare import compare_runs, diff_findings

QUIET = {"train__progress": "none", "train__threads": 1}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    trainwise.fit(out=root / "a", train__epochs=2, model__hidden=[16], optim__lr=1e-3, **QUIET)
    trainwise.fit(out=root / "b", train__epochs=3, model__hidden=[32], optim__lr=1e-2, model__dropout=0.2, **QUIET)
    return root / "a", root / "b"


@dataclass
class StandIn:
    code: str
    severity: str
    epochs: tuple = (1, 1)
    message: str = ""


def stand_in_diagnose(run_dir):
    """A stand-in for the doctor: the run trained with the higher LR 'overfits', the other is 'underfitting'."""
    if "lr = 0.01" in (run_dir / "config.toml").read_text():
        return [StandIn("overfitting", "warning"), StandIn("healthy", "info"), StandIn("overfitting", "error", (2, 3))]
    return [StandIn("underfitting", "warning"), StandIn("healthy", "info")]


def test_config_metric_and_finding_differences(two_runs):
    a, b = two_runs
    c = compare_runs([a, b], diagnose=stand_in_diagnose)
    assert dict(c.config_diff) == {"model.hidden": [[16], [32]], "optim.lr": [1e-3, 1e-2], "train.epochs": [2, 3], "model.dropout": [0.0, 0.2]}
    ha, hb = History.load(a / "history.jsonl"), History.load(b / "history.jsonl")
    rows = dict(c.per_epoch["val_loss"])
    assert rows[1] == [ha[0]["val_loss"], hb[0]["val_loss"]] and rows[3] == [None, hb[2]["val_loss"]]
    final = dict(c.final)
    assert final["test_acc"] == [json.loads((d / "summary.json").read_text())["test"]["acc"] for d in (a, b)]
    change = c.findings["changes"][0]
    assert change["appeared"] == [{"code": "overfitting", "severity": "error"}]  # highest severity of the code
    assert change["disappeared"] == [{"code": "underfitting", "severity": "warning"}]
    assert change["unchanged"] == ["healthy"]
    text = c.to_text()
    assert "B-A" in text and "optim.lr" in text and "appeared: overfitting (error)" in text and "disappeared: underfitting" in text


def test_findings_are_compared_by_code_and_severity():
    before = [{"code": "lr_too_high", "severity": "warning"}, {"code": "plateau", "severity": "info"}]
    after = [{"code": "lr_too_high", "severity": "error"}, {"code": "dead_units", "severity": "warning"}]
    d = diff_findings(before, after)
    assert d["appeared"] == [{"code": "dead_units", "severity": "warning"}]
    assert d["disappeared"] == [{"code": "plateau", "severity": "info"}]
    assert d["severity_changed"] == [{"code": "lr_too_high", "from": "warning", "to": "error"}]


def test_without_doctor(two_runs, monkeypatch):
    monkeypatch.setattr(compare_module, "load_diagnose", lambda: None)
    c = compare_runs(list(two_runs))
    assert c.findings == {"available": False, "reason": "doctor not available", "per_run": [], "changes": []}
    assert "doctor findings: doctor not available" in c.to_text()


def test_a_failing_doctor_does_not_stop_the_comparison(two_runs):
    def broken(run_dir):
        raise KeyError("val_loss")

    c = compare_runs(list(two_runs), diagnose=broken)
    assert "doctor failed: KeyError" in c.findings["changes"][0]["reason"]


def test_cli_writes_html_and_json(two_runs, tmp_path, monkeypatch):
    monkeypatch.setattr(compare_module, "load_diagnose", lambda: stand_in_diagnose)
    a, b = two_runs
    result = invoke("compare", str(a), str(b), "--metric", "val_acc", "--html", str(tmp_path / "c.html"), "--json", str(tmp_path / "c.json"))
    assert result.exit_code == 0, result.output
    assert "val_acc per epoch" in result.stdout and "val_loss per epoch" not in result.stdout
    page = (tmp_path / "c.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page and 'class="better"' in page
    assert "appeared: overfitting" in page
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["config_diff"][0]["key"] == "model.dropout" and saved["findings"]["available"]
    assert invoke("compare", str(a)).exit_code == 2
    assert invoke("compare", str(a), str(tmp_path / "nothing")).exit_code == 2

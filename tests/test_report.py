import re

import trainwise
from tests.helpers import run_cli
from trainwise.config import Config
from trainwise.report import render_report


def test_report_written_with_curves_and_confusion(tmp_path, quiet):
    run = trainwise.fit(Config().replace({**quiet, "train.epochs": 3}), out=tmp_path / "r")
    page = (tmp_path / "r" / "report.html").read_text()
    assert run.summary["report"].endswith("report.html")
    assert page.count("<svg") >= 4  # loss, accuracy, lr, confusion matrix
    for title in ("Loss", "Accuracy", "F1", "Learning rate", "Time per epoch", "Test split", "Config", "Environment"):
        assert f">{title}<" in page
    assert not re.search(r"<script[^>]*src|(src|href)=\"?https?:", page)  # self-contained: an inline script, nothing fetched
    # the per-class table carries the test confusion matrix's support
    assert page.count("<tr><td>") == 10


def test_report_marks_findings_and_escapes(tmp_path, quiet):
    trainwise.fit(Config().replace({**quiet, "train.epochs": 2, "train.report": False}), out=tmp_path / "r")
    assert not (tmp_path / "r" / "report.html").exists()
    finding = {"code": "overfitting", "severity": "warning", "epochs": (1, 2), "evidence": {"gap": 0.2},
               "message": "val <loss> rises", "fixes": ["optim.weight_decay=5e-4"]}
    page = render_report(tmp_path / "r", findings=[finding]).read_text()
    assert "overfitting" in page and "val &lt;loss&gt; rises" in page and "optim.weight_decay=5e-4" in page


def test_report_cli(tmp_path, quiet):
    trainwise.fit(Config().replace({**quiet, "train.epochs": 1, "train.report": False}), out=tmp_path / "r")
    proc = run_cli("report", str(tmp_path / "r"), "--out", str(tmp_path / "x.html"))
    assert proc.returncode == 0 and (tmp_path / "x.html").stat().st_size > 10_000
    proc = run_cli("report", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr

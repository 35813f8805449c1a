"""A run shorter than the doctor can judge is neither called healthy nor "repaired"."""

from __future__ import annotations

import trainwise
from trainwise.config import Config


def test_a_two_epoch_run_is_too_short_to_judge_and_fix_leaves_it_alone(tmp_path):
    run = trainwise.fit(Config().replace({"train.epochs": 2, "train.progress": "none", "train.threads": 1, "train.report": False,
                                          "monitors.enabled": False}), out=tmp_path / "run")
    assert [f.code for f in run.findings] == ["too_short"]  # digits, 2 epochs: no rule has a trend to judge
    chain = trainwise.fix(tmp_path / "run", out=tmp_path / "fix")
    assert chain.stop_reason.startswith("too short to judge: 2 epoch(s)") and not chain.rounds
    import json

    assert json.loads((tmp_path / "fix" / "fix.json").read_text())["original"]["findings"] == ["too_short"]

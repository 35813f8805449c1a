"""Phases named in a foreign log's own column reach the phase rules (real logs, labelled by hand before the
doctor read them): a boundary that cost the run is attributed to it; a throw that the phase repeats on its
own is one of the curve's swings."""

from __future__ import annotations

import tomllib
from pathlib import Path

from trainwise.doctor import diagnose, read_history

ROOT = Path(__file__).resolve().parents[2]


def _log(set_dir: str, prefix: str) -> tuple[Path, dict]:
    root = ROOT / "benchmarks" / set_dir
    e = next(e for e in tomllib.loads((root / "sources.toml").read_text())["log"] if e["file"].startswith(prefix))
    return root / "logs" / e["file"], e


def test_a_phase_column_is_phases_of_one_run_and_the_costly_boundary_is_named():
    # brain MRI, Keras: 30 'initial' epochs, then 'fine_tuning' at LR 1e-5; validation loss 0.257 -> 0.34 and stays
    path, e = _log("real_logs_9", "Murilo-Rosendo__Brain_Murilo")
    records, meta = read_history(path)
    assert len(records) == 36 and meta["runs"] == 1  # one run, not two: the epoch counter runs on
    assert records[29]["phase"] == "initial" and records[30]["phase"] == "fine_tuning"
    assert any("names phases of one run" in a for a in meta["assumptions"])
    found = [f for f in diagnose(path, classes=e["classes"]) if f.severity != "info"]
    assert e["label"] == "phase_regression" and found[0].code == "phase_regression", [str(f) for f in found]
    assert "'initial' -> 'fine_tuning' at epoch 31" in found[0].message


def test_a_throw_the_phase_repeats_on_its_own_is_not_the_boundarys():
    # chest X-rays on 16 validation images: loss 0.35 -> 2.23 at the warm-up/fine-tune boundary and 2.56 six epochs later
    path, e = _log("real_logs_5", "vraj590__chest-xray")
    records, _ = read_history(path)
    assert records[2]["phase"] != records[3]["phase"]
    codes = [f.code for f in diagnose(path) if f.severity != "info"]
    assert e["label"] == "unstable_training" and codes[:1] == ["unstable_training"], codes
    assert "phase_regression" not in codes


def test_a_lower_lr_for_a_foreign_phase_starts_from_the_lr_that_phase_ran_at():
    # head at 1e-3 (3e-4 later), then fine-tuning at 1e-4: "3e-4 (now 1e-3)" would raise the phase's LR
    path, _ = _log("real_logs_10", "Devansh2009__diabetic-retinopathy")
    phased = next(f for f in diagnose(path) if f.code == "phase_regression")
    assert not any(fix.startswith(("optim.lr=", "schedule.max_lr=")) for fix in phased.fixes), phased.fixes
    assert "a lower learning rate for the new phase: 3e-5 (it ran at 1e-4)" in phased.advice

"""Verdicts on stored real training logs (benchmarks/real_logs, labelled by hand before the doctor read
them): each rule change has a log it must fire on and one it must not. The number of classes and the task
are passed as the benchmark passes them (sources.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwise.doctor import diagnose

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "benchmarks" / "real_logs"
ENTRIES = {e["file"].split("__")[0]: e for e in tomllib.loads((REAL / "sources.toml").read_text())["log"]}


def findings(owner: str):
    e = ENTRIES[owner]
    return diagnose(REAL / "logs" / e["file"], e.get("config"), classes=e.get("classes") or None, task=e.get("task"))


def verdict(owner: str) -> list[str]:
    """The warning/error codes, most serious first (``["healthy"]`` when none)."""
    return [f.code for f in findings(owner) if f.severity != "info"] or ["healthy"]


# ----------------------------------------------------------------------------- stuck_at_chance
@pytest.mark.parametrize("owner", [
    "LeonGogin",  # 3 classes: loss 1.02 (ln 3 = 1.10), accuracy 0.59 = the class mix, flat for 19 epochs
    "arshiv-web",  # 5 classes: evaluation loss near ln 5 and rising, accuracy below the majority share it started at
    "ElectronicXX",  # binary: validation accuracy at the majority share for 17 epochs, loss at ln 2 throughout
])
def test_at_chance_from_the_class_mix_is_stuck_not_underfitting(owner):
    codes = verdict(owner)
    assert codes[0] == "stuck_at_chance", codes
    assert "underfitting" not in codes and "lr_too_low" not in codes, codes


@pytest.mark.parametrize("owner", [
    "tanmayai23",  # 43 classes, label smoothing floor: loss 0.57 at 0.98 accuracy, far below ln 43
    "Dantusaikamal",  # binary, loss 0.56 -> 0.46 and accuracy 0.72 -> 0.81: it learnt
])
def test_a_learnt_model_is_not_at_chance(owner):
    found = findings(owner)
    assert "stuck_at_chance" not in found.codes, [str(f) for f in found]
    assert not any("never left chance" in f.message for f in found), [str(f) for f in found]  # memorised noise

"""The doctor zoo's manifestation checks (benchmarks/doctor_zoo/manifest.py) on real short runs.

Screening keeps a case only when its fault shows; these checks decide that without the doctor, so they
must see a planted fault on the broken run and not on its clean twin.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[2] / "benchmarks" / "doctor_zoo"
sys.path.insert(0, str(ZOO))

import run as zoo  # noqa: E402
from cases import CASES  # noqa: E402


@pytest.mark.parametrize("name", ["init_x10_no_norm", "bottleneck_1", "imbalance_95_5"])
def test_fault_shows_on_the_broken_run_and_not_on_its_twin(name):
    case = next(c for c in CASES if c.name == name)
    bug, twin = zoo.run_pair(case, seed=0)
    shown, evidence = bug.shown
    assert shown, evidence
    assert not case.manifested(twin.outcome, twin.outcome)[0]
    assert not twin.ours, twin.findings  # the twin is clean for the doctor too


def test_screen_table_keeps_a_case_only_on_enough_seeds():
    case = next(c for c in CASES if c.name == "bottleneck_1")
    bug, twin = zoo.run_pair(case, seed=0)
    missed = zoo.Result(**{**bug.__dict__, "seed": 1, "shown": (False, "not shown")})
    table = zoo.screen_table([bug, twin] * 3 + [missed, twin])
    assert "| bottleneck_1 |" in table and "3 of 4 | yes" in table
    assert "2 of 4 | **no**" in zoo.screen_table([bug, twin] * 2 + [missed, twin] * 2)

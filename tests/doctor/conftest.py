"""Real runs are made once per test session and kept in memory (never on disk)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make_runs, whatever the rootdir/import mode

from make_runs import Run, run_scenario  # noqa: E402

_RUNS: dict[str, Run] = {}


@pytest.fixture(scope="session")
def runs():
    def get(name: str) -> Run:
        if name not in _RUNS:
            _RUNS[name] = run_scenario(name)
        return _RUNS[name]

    return get

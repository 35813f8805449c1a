"""Time the report of one run directory as ``trainwise train`` pays for it: a fresh process that has
imported torch and the doctor already renders ``report.html`` once (matplotlib's import included).

    python benchmarks/report_render.py RUN_DIR        # e.g. after trainwise train configs/digits.toml --out RUN_DIR

Prints wall and CPU seconds; on a shared machine compare the CPU seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402,F401  (imported before the clock starts, as in a training process)

from trainwise.doctor import diagnose  # noqa: E402
from trainwise.report import render_report  # noqa: E402


def main(argv=None) -> int:
    run = Path((argv or sys.argv[1:])[0])
    findings = list(diagnose(run))
    wall, cpu = time.perf_counter(), time.process_time()
    render_report(run, findings=findings)
    print(f"report of {run}: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time the report of one run directory as ``trainwise train`` pays for it: a fresh process that has
imported torch and the doctor already renders ``report.html`` once (matplotlib's import included).

    python benchmarks/report_render.py RUN_DIR                 # e.g. after trainwise train configs/digits.toml --out RUN_DIR
    python benchmarks/report_render.py RUN_DIR --sequential    # the plots drawn in this process (workers=1)
    python benchmarks/report_render.py RUN_DIR --compare 5     # both ways, alternating, 5 fresh processes each

Prints wall seconds and CPU seconds (the plotting workers' CPU included); on a shared machine compare
the CPU seconds, and wall times only side by side.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def once(run: Path, workers: int | None) -> tuple[float, float]:
    import torch  # noqa: F401  (imported before the clock starts, as in a training process)

    from trainwise.doctor import diagnose
    from trainwise.report import render_report

    findings = list(diagnose(run))
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    render_report(run, findings=findings, workers=workers)
    return time.perf_counter() - wall, time.process_time() - cpu + _children_cpu() - children


def compare(run: Path, repeats: int) -> None:
    rows: dict[str, list[tuple[float, float]]] = {"--sequential": [], "--parallel": []}
    for _ in range(repeats):
        for flag in rows:  # alternating, so drifting load on the machine hits both alike
            out = subprocess.run([sys.executable, __file__, str(run), flag], capture_output=True, text=True, check=True).stdout
            wall, cpu = (float(x) for x in out.split()[-2:])
            rows[flag].append((wall, cpu))
    print(f"{'variant':<13} {'wall median':>11} {'wall min':>8} {'CPU median':>10}   (s, {repeats} fresh processes each)")
    for flag, values in rows.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        print(f"{flag[2:]:<13} {statistics.median(walls):>11.3f} {min(walls):>8.3f} {statistics.median(cpus):>10.3f}")


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    run = Path(args[0])
    if "--compare" in args:
        compare(run, int(args[args.index("--compare") + 1]))
        return 0
    wall, cpu = once(run, 1 if "--sequential" in args else None)
    print(f"report of {run}: wall, CPU seconds: {wall:.3f} {cpu:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

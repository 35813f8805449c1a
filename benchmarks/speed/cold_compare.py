"""Cold `trainwise train` runs of two checkouts, alternating: the wall clock a user waits, side by side.

    python benchmarks/speed/cold_compare.py --baseline DIR [--baseline DIR2 ...] [--recipe configs/fashion_mnist_gpu_fast.toml] [--repeats 4]

DIR is another checkout of trainwise (e.g. ``git archive COMMIT | tar -x -C DIR``). Each repeat runs the
baselines, then this checkout, each in a fresh process (``python -m trainwise train RECIPE
--profile-startup``, warm disk cache, the data cache filled by a first unreported run), so that the two
are compared under the same load. The table gives the outside wall clock, the training time inside it
(the ``training`` phases of ``startup_profile.json``), their difference, and the report phase.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cold_run(code: Path, recipe: Path, cache: Path, overrides: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="cold-")) / "run"
    cmd = [sys.executable, "-m", "trainwise", "train", str(recipe), "--out", str(out), "--profile-startup",
           "--set", "train.progress=none", *[a for o in overrides for a in ("--set", o)]]
    path = os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TRAINWISE_CACHE": str(cache)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=code, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{code}: {done.stderr.strip()[-2000:]}")
    phases = {p["name"]: p["seconds"] for p in json.loads((out / "startup_profile.json").read_text())["phases"]}
    training = sum(v for k, v in phases.items() if k.startswith("training"))
    return {"wall": wall, "training": training, "over": wall - training, "report": phases.get("report", float("nan")), "phases": phases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, action="append", required=True, help="another checkout; repeat for several")
    p.add_argument("--recipe", type=Path, default=ROOT / "configs" / "fashion_mnist_gpu_fast.toml")
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for both")
    args = p.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="tw-cache-"))
    trees = {(f"baseline {b.name}" if len(args.baseline) > 1 else "baseline"): b.resolve() for b in args.baseline}
    trees["this"] = ROOT
    cold_run(ROOT, args.recipe.resolve(), cache, args.overrides)  # fills the data cache; not reported
    rows: dict[str, list[dict]] = {name: [] for name in trees}
    print("| run | code | wall (s) | training (s) | wall - training (s) | report (s) |\n|---|---|---|---|---|---|")
    for i in range(args.repeats):
        for name, code in trees.items():
            r = cold_run(code, args.recipe.resolve(), cache, args.overrides)
            rows[name].append(r)
            print(f"| {i + 1} | {name} | {r['wall']:.2f} | {r['training']:.2f} | {r['over']:.2f} | {r['report']:.2f} |", flush=True)
    names = list(dict.fromkeys(k for rs in rows.values() for r in rs for k in r["phases"]))
    print("\nphase medians (s)\n| phase | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for phase in names:
        print(f"| {phase} | " + " | ".join(f"{statistics.median(r['phases'].get(phase, 0.0) for r in rs):.3f}" for rs in rows.values()) + " |")
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "training", "over", "report")}
        print(f"median {name}: wall {med['wall']:.2f} s, training {med['training']:.2f} s, wall - training {med['over']:.2f} s, "
              f"report {med['report']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

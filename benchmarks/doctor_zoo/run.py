"""The doctor zoo: broken runs and their clean twins, diagnosed by trainwise's doctor and by AUTOTRAINER's
rules, scored side by side.

Every run is a real ``trainwise.fit`` on digits, breast_cancer or MNIST-1D with the monitors on (every
5 steps). A prediction is a code at severity warning or error (info findings explain, they do not
alarm); AUTOTRAINER has no severities, every detection counts. Scoring per code: a predicted code is a
true positive on a case that expects it, neutral on a case where it is listed as also true, a false
positive anywhere else (on every clean twin); an expected code not predicted is a false negative. The
false-alarm rate is the share of clean twins with any prediction.

    python benchmarks/doctor_zoo/run.py                 # all cases, seeds 0 and 1 (a few minutes on 2 cores)
    python benchmarks/doctor_zoo/run.py --seeds 0 --case lr_low_adam --verbose
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import autotrainer  # noqa: E402
from cases import CASES, Bug, Case  # noqa: E402
from trainwise import fit  # noqa: E402
from trainwise.config import build_config, merge_overrides  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.models import build_model  # noqa: E402

# The Trainer adds the monitors from [monitors] and diagnoses the finished run itself (run.findings).
BASE = {"train.progress": "none", "train.threads": 1, "train.report": False, "monitors.every_n_steps": 5, "doctor.live": False}


@dataclass
class Result:
    case: str
    seed: int
    clean: bool
    expect: str | None
    also: frozenset[str]
    ours: set[str]
    baseline: set[str]
    seconds: float
    findings: list[str]


def run_one(case: Case, seed: int, clean: bool) -> Result:
    overrides = {**case.overrides, **(case.twin if clean else {}), **BASE, "train.seed": seed}
    bug: Bug = case.twin_bug if clean else case.bug
    cfg = build_config(merge_overrides({}, overrides))
    started = time.perf_counter()
    data = prepare_data(cfg.data)
    if bug.data:
        bug.data(data, seed)
    torch.manual_seed(seed)
    out_dim = 1 if data.task == "binary" else data.num_classes
    model = build_model(cfg.model, data.input_shape, data.feature_dim, out_dim)
    if bug.model:
        bug.model(model)
    run = fit(cfg, model=model, data=data, callbacks=bug.callbacks() if bug.callbacks else [])
    records = run.history.records
    found = run.findings
    return Result(
        case=case.name, seed=seed, clean=clean, expect=None if clean else case.expect, also=frozenset() if clean else case.also,
        ours={f.code for f in found if f.severity != "info"}, baseline=autotrainer.detect(records, cfg.train.epochs),
        seconds=time.perf_counter() - started, findings=[str(f) for f in found],
    )


def score(results: list[Result], which: str) -> tuple[dict[str, Counter], float]:
    per_code: dict[str, Counter] = {}
    for r in results:
        predicted = getattr(r, which)
        for code in predicted:
            c = per_code.setdefault(code, Counter())
            if code == r.expect:
                c["tp"] += 1
            elif code not in r.also:
                c["fp"] += 1
        if r.expect is not None and r.expect not in predicted:
            per_code.setdefault(r.expect, Counter())["fn"] += 1
    clean = [r for r in results if r.clean]
    false_alarm = sum(bool(getattr(r, which)) for r in clean) / max(len(clean), 1)
    return per_code, false_alarm


def _pr(c: Counter) -> tuple[str, str]:
    p = f"{c['tp'] / (c['tp'] + c['fp']):.2f}" if c["tp"] + c["fp"] else "-"
    r = f"{c['tp'] / (c['tp'] + c['fn']):.2f}" if c["tp"] + c["fn"] else "-"
    return p, r


def report(results: list[Result]) -> str:
    ours, ours_fa = score(results, "ours")
    base, base_fa = score(results, "baseline")
    lines = ["| case | seed | expected | trainwise doctor | AUTOTRAINER rules |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        exp = "(clean twin)" if r.clean else r.expect
        fmt = lambda s: ", ".join(sorted(s)) or "-"  # noqa: E731
        lines.append(f"| {r.case} | {r.seed} | {exp} | {fmt(r.ours)} | {fmt(r.baseline)} |")
    lines += ["", "| code | doctor precision | doctor recall | AUTOTRAINER precision | AUTOTRAINER recall |",
              "| --- | --- | --- | --- | --- |"]
    for code in sorted(set(ours) | set(base)):
        po, ro = _pr(ours.get(code, Counter()))
        pb, rb = _pr(base.get(code, Counter()))
        lines.append(f"| {code} | {po} | {ro} | {pb} | {rb} |")

    def micro(per_code: dict[str, Counter]) -> tuple[str, str]:
        total = sum(per_code.values(), Counter())
        return _pr(total)

    (mpo, mro), (mpb, mrb) = micro(ours), micro(base)
    n_clean = sum(r.clean for r in results)
    lines += [f"| **all codes (micro)** | {mpo} | {mro} | {mpb} | {mrb} |", "",
              f"False alarms on {n_clean} clean twins: doctor {ours_fa:.0%}, AUTOTRAINER rules {base_fa:.0%}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every finding")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = [c for c in CASES if not args.case or c.name in args.case]
    results: list[Result] = []
    started = time.perf_counter()
    for case in cases:
        for seed in args.seeds:
            for clean in (False, True):
                r = run_one(case, seed, clean)
                results.append(r)
                tag = "twin " if clean else "bug  "
                print(f"{tag}{case.name:20s} seed {seed}: doctor {sorted(r.ours)}  autotrainer {sorted(r.baseline)}  ({r.seconds:.1f}s)",
                      file=sys.stderr)
                if args.verbose:
                    for f in r.findings:
                        print("      ", f, file=sys.stderr)
    table = report(results)
    header = (f"Doctor zoo, {date.today().isoformat()}, {platform.machine()} {platform.processor() or ''} "
              f"({torch.get_num_threads()} torch thread), torch {torch.__version__}, seeds {args.seeds}, "
              f"{time.perf_counter() - started:.0f} s.\nCommand: python benchmarks/doctor_zoo/run.py "
              + " ".join(argv if argv is not None else sys.argv[1:]))
    print(header + "\n\n" + table)
    if args.out:
        args.out.write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()

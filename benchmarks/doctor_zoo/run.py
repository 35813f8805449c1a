"""The doctor zoo: broken runs and their clean twins, diagnosed by trainwise's doctor and by AUTOTRAINER's
rules, scored side by side.

Every run is a real ``trainwise.fit`` on digits, breast_cancer, MNIST-1D or a 2,000-image Fashion-MNIST
subset with the monitors on (every 5 steps). A prediction is a code at severity warning or error (info
findings explain, they do not alarm); AUTOTRAINER has no severities, every detection counts. Scoring per
code: a predicted code is a true positive on a case that expects it, neutral on a case where it is
listed as also true, a false positive anywhere else (on every clean twin); an expected code not
predicted is a false negative. The false-alarm rate is the share of clean twins with any prediction.

Screening ("keep a fault only if it shows over several seeds", as code): ``--screen`` trains
every case and its twin on the screening seeds and asks each case's manifestation check (manifest.py,
which never asks the doctor) whether the fault showed. A case is kept in the scored zoo when it shows on
at least ``KEEP_AT_LEAST`` of them; the decision is recorded in cases.py (``Case.dropped``).

    python benchmarks/doctor_zoo/run.py                 # kept cases, seeds 0 and 1 (a few minutes on 2 cores)
    python benchmarks/doctor_zoo/run.py --seeds 0 --case lr_x1e-4_adam --verbose
    python benchmarks/doctor_zoo/run.py --screen        # every case on seeds 0-3: on how many did the fault show?
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
from manifest import Outcome  # noqa: E402
from trainwise import fit  # noqa: E402
from trainwise.config import build_config, merge_overrides  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.models import build_model  # noqa: E402

# The Trainer adds the monitors from [monitors] and diagnoses the finished run itself (run.findings).
SCREEN_SEEDS = [0, 1, 2, 3]
KEEP_AT_LEAST = 3
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
    outcome: Outcome
    shown: tuple[bool, str] | None = None  # broken runs: did the fault show (set once the twin has run)


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
        outcome=Outcome(records, run.summary.get("test") or {}, data.num_classes),
    )


def run_pair(case: Case, seed: int, verbose: bool = False) -> tuple[Result, Result]:
    """The broken run and its twin on one seed; the broken one carries whether its fault showed."""
    bug, twin = run_one(case, seed, clean=False), run_one(case, seed, clean=True)
    bug.shown = case.manifested(bug.outcome, twin.outcome)
    for r in (bug, twin):
        tag = "twin " if r.clean else "bug  "
        shown = "" if r.clean else f"  fault {'shown' if r.shown[0] else 'NOT shown'}: {r.shown[1]}"
        print(f"{tag}{case.name:24s} seed {seed}: doctor {sorted(r.ours)}  autotrainer {sorted(r.baseline)}  ({r.seconds:.1f}s){shown}",
              file=sys.stderr)
        if verbose:
            for f in r.findings:
                print("      ", f, file=sys.stderr)
    return bug, twin


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
    lines = ["| case | seed | expected | fault shown | trainwise doctor | AUTOTRAINER rules |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        exp = "(clean twin)" if r.clean else r.expect
        shown = "" if r.shown is None else ("yes" if r.shown[0] else "no")
        fmt = lambda s: ", ".join(sorted(s)) or "-"  # noqa: E731
        lines.append(f"| {r.case} | {r.seed} | {exp} | {shown} | {fmt(r.ours)} | {fmt(r.baseline)} |")
    lines += ["", "| code | doctor precision | doctor recall | AUTOTRAINER precision | AUTOTRAINER recall |",
              "| --- | --- | --- | --- | --- |"]
    for code in sorted(set(ours) | set(base)):
        po, ro = _pr(ours.get(code, Counter()))
        pb, rb = _pr(base.get(code, Counter()))
        lines.append(f"| {code} | {po} | {ro} | {pb} | {rb} |")

    def micro(per_code: dict[str, Counter]) -> tuple[str, str]:
        total = sum(per_code.values(), Counter())
        return _pr(total)

    def macro(per_code: dict[str, Counter]) -> str:
        expected = {r.expect for r in results if r.expect is not None}
        recalls = [per_code.get(c, Counter())["tp"] / max(per_code.get(c, Counter())["tp"] + per_code.get(c, Counter())["fn"], 1)
                   for c in expected]
        return f"{sum(recalls) / max(len(recalls), 1):.2f}"

    (mpo, mro), (mpb, mrb) = micro(ours), micro(base)
    n_clean = sum(r.clean for r in results)
    fa = lambda which: sum(bool(getattr(r, which)) for r in results if r.clean)  # noqa: E731
    lines += [f"| **all codes (micro)** | {mpo} | {mro} | {mpb} | {mrb} |", "",
              f"Macro recall over the {len({r.expect for r in results if r.expect})} expected codes: doctor {macro(ours)}, "
              f"AUTOTRAINER rules {macro(base)}.",
              f"False alarms on {n_clean} clean twins: doctor {ours_fa:.0%} ({fa('ours')}), AUTOTRAINER rules {base_fa:.0%} "
              f"({fa('baseline')}).",
              f"Broken runs whose fault showed (manifest.py): {sum(r.shown[0] for r in results if r.shown)} of "
              f"{sum(r.shown is not None for r in results)}."]
    return "\n".join(lines)


def screen_table(results: list[Result]) -> str:
    """Per case: on how many screening seeds the fault showed, kept or not, and each seed's evidence."""
    lines = ["| case | fault | expected | shown on | kept | evidence per seed |", "| --- | --- | --- | --- | --- | --- |"]
    for case in dict.fromkeys(r.case for r in results):
        rows = [r for r in results if r.case == case and not r.clean]
        spec = next(c for c in CASES if c.name == case)
        n = sum(r.shown[0] for r in rows)
        evidence = "; ".join(f"{r.seed}: {'yes' if r.shown[0] else 'no'} ({r.shown[1]})" for r in rows)
        keep = "yes" if n >= KEEP_AT_LEAST else "**no**"
        lines.append(f"| {case} | {spec.fault} | {spec.expect} | {n} of {len(rows)} | {keep} | {evidence} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 1 (--screen: the screening seeds)")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every finding")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    parser.add_argument("--screen", action="store_true", help=f"screen every case on seeds {SCREEN_SEEDS} (or --seeds): did the fault show?")
    parser.add_argument("--all", action="store_true", help="score the cases screening dropped as well")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = args.seeds or (SCREEN_SEEDS if args.screen else [0, 1])
    cases = [c for c in CASES if (not args.case or c.name in args.case) and (args.screen or args.all or args.case or not c.dropped)]
    results: list[Result] = []
    started = time.perf_counter()
    for case in cases:
        for seed in seeds:
            results.extend(run_pair(case, seed, args.verbose))
    table = screen_table(results) if args.screen else report(results)
    header = (f"Doctor zoo, {date.today().isoformat()}, {platform.machine()} {platform.processor() or ''} "
              f"({torch.get_num_threads()} torch thread), torch {torch.__version__}, seeds {seeds}, "
              f"{len(cases)} cases, {time.perf_counter() - started:.0f} s.\nCommand: python benchmarks/doctor_zoo/run.py "
              + " ".join(argv if argv is not None else sys.argv[1:]))
    print(header + "\n\n" + table)
    if args.out:
        args.out.write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()

"""Real training logs from public repositories, labelled by hand, diagnosed by trainwise's doctor and by
AUTOTRAINER's rules.

sources.toml lists each log: where it came from (repository, path, commit), its format, the number of
classes when the repository says it, the task when it is not classification, a config stated by the log
itself, and the hand label (a doctor code, or healthy) with its reason. The labels were committed before
any scoring (see the git history of sources.toml).

The split is fixed by the source, not by outcome: a log is held out when the first byte of
sha256("repo/path") is odd, development otherwise. Tune on the development half; score the held-out half
once (``--split heldout``).

Verdicts:

* doctor: the code of its most serious warning- or error-level finding; ``healthy`` when it has none
  (info findings explain a curve, they do not alarm). "any" also counts a label found lower in the list.
* AUTOTRAINER (benchmarks/doctor_zoo/autotrainer.py, checking every 3 epochs after 30 % of the run, the
  run's length taken as its budget): the set of problems it reports; ``healthy`` when empty. It has no
  ranking, so its exact agreement is "its set is exactly {label}"; "any" is "the label is in its set".

    python benchmarks/real_logs/score.py                    # development half
    python benchmarks/real_logs/score.py --split heldout    # the held-out half, once
    python benchmarks/real_logs/score.py --split all --verbose

A second set, benchmarks/real_logs_2 (same schema, none of these repositories), was collected after the
first had been scored and is held out as a whole: ``--set 2`` scores all of it once (``--split`` does not
apply to it). A third set, benchmarks/real_logs_3 (none of the repositories of the first two), was collected
after the second had been scored and is held out as a whole in the same way: ``--set 3``. Each was scored
once, on 2026-12-02 (docs/benchmarks.md); set 2 has been development data since its scoring. A fourth set,
benchmarks/real_logs_4 (none of the repositories of the first three), was collected after the third had been
scored and is held out as a whole: ``--set 4``. A fifth set, benchmarks/real_logs_5 (none of the repositories
or owners of the first four), was collected after the fourth and is held out as a whole: ``--set 5``. A sixth
set, benchmarks/real_logs_6 (none of the repositories or owners of the first five), was collected after the
fifth and is held out as a whole: ``--set 6``. A seventh set, benchmarks/real_logs_7 (none of the repositories or
owners of the first six), was collected after the sixth and is held out as a whole: ``--set 7``. An eighth set,
benchmarks/real_logs_8 (none of the repositories or owners of the first seven), was collected after the seventh and
is held out as a whole: ``--set 8``. A ninth set, benchmarks/real_logs_9 (none of the repositories or owners of the
first eight), was collected after the eighth and is held out as a whole: ``--set 9``. A tenth set,
benchmarks/real_logs_10 (none of the repositories or owners of the first nine), was collected after the ninth and is
held out as a whole: ``--set 10``. An eleventh set, benchmarks/real_logs_11 (none of the repositories or owners of
the first ten), was collected after the tenth and is held out as a whole: ``--set 11``.

    python benchmarks/real_logs/score.py --set 2
    python benchmarks/real_logs/score.py --set 3
    python benchmarks/real_logs/score.py --set 4
    python benchmarks/real_logs/score.py --set 5
    python benchmarks/real_logs/score.py --set 6
    python benchmarks/real_logs/score.py --set 7
    python benchmarks/real_logs/score.py --set 8
    python benchmarks/real_logs/score.py --set 9
    python benchmarks/real_logs/score.py --set 10
    python benchmarks/real_logs/score.py --set 11
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = {1: HERE, 2: HERE.parent / "real_logs_2", 3: HERE.parent / "real_logs_3",
        4: HERE.parent / "real_logs_4", 5: HERE.parent / "real_logs_5", 6: HERE.parent / "real_logs_6",
        7: HERE.parent / "real_logs_7", 8: HERE.parent / "real_logs_8", 9: HERE.parent / "real_logs_9",
        10: HERE.parent / "real_logs_10", 11: HERE.parent / "real_logs_11"}
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[0] / "doctor_zoo"))

import autotrainer  # noqa: E402

from trainwise.doctor import diagnose, read_history  # noqa: E402
from trainwise.errors import UserError  # noqa: E402


@dataclass
class Result:
    entry: dict
    read: bool
    doctor: str = ""
    doctor_all: list[str] = field(default_factory=list)
    autotrainer: set[str] = field(default_factory=set)
    error: str = ""
    assumptions: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.entry["label"]


def split_of(entry: dict) -> str:
    digest = hashlib.sha256(f"{entry['repo']}/{entry['path']}".encode()).digest()
    return "heldout" if digest[0] % 2 else "dev"


def run_one(entry: dict, root: Path = HERE) -> Result:
    path = root / "logs" / entry["file"]
    classes = entry.get("classes") or None
    try:
        found = diagnose(path, entry.get("config"), classes=classes, task=entry.get("task"))
        records, _ = read_history(path)
    except UserError as err:
        return Result(entry, read=False, error=str(err))
    alarms = [f.code for f in found if f.severity != "info"]
    return Result(entry, read=True, doctor=alarms[0] if alarms else "healthy", doctor_all=alarms or ["healthy"],
                  autotrainer=autotrainer.detect(records, len(records)), assumptions=found.assumptions)


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} = {n / d:.2f}" if d else "-"


def report(name: str, results: list[Result], verbose: bool) -> None:
    read = [r for r in results if r.read]
    print(f"\n## {name}: {len(results)} logs, {len(read)} read, {len(results) - len(read)} unreadable")
    for r in results:
        if not r.read:
            print(f"  unreadable: {r.entry['file']}: {r.error}")
    exact = sum(r.doctor == r.label for r in read)
    anywhere = sum(r.label in r.doctor_all for r in read)
    at_exact = sum(r.autotrainer == ({r.label} if r.label != "healthy" else set()) for r in read)
    at_any = sum((not r.autotrainer) if r.label == "healthy" else r.label in r.autotrainer for r in read)
    print(f"exact agreement   doctor {_pct(exact, len(read))}   AUTOTRAINER {_pct(at_exact, len(read))}")
    print(f"label anywhere    doctor {_pct(anywhere, len(read))}   AUTOTRAINER {_pct(at_any, len(read))}")
    healthy = [r for r in read if r.label == "healthy"]
    faulty = [r for r in read if r.label != "healthy"]
    print(f"false alarms on healthy   doctor {_pct(sum(r.doctor != 'healthy' for r in healthy), len(healthy))}   "
          f"AUTOTRAINER {_pct(sum(bool(r.autotrainer) for r in healthy), len(healthy))}")
    print(f"'healthy' on faulty       doctor {_pct(sum(r.doctor == 'healthy' for r in faulty), len(faulty))}   "
          f"AUTOTRAINER {_pct(sum(not r.autotrainer for r in faulty), len(faulty))}")
    by_label: dict[str, list[Result]] = defaultdict(list)
    for r in read:
        by_label[r.label].append(r)
    print("per-class recall (doctor exact | AUTOTRAINER label in set):")
    for label in sorted(by_label):
        rs = by_label[label]
        at = sum((not r.autotrainer) if label == "healthy" else label in r.autotrainer for r in rs)
        print(f"  {label:18s} {_pct(sum(r.doctor == label for r in rs), len(rs)):>14s}   {_pct(at, len(rs)):>14s}")
    print(f"markdown row: | {name} | {len(read)}/{len(results)} | {exact / max(1, len(read)):.2f} ({exact}/{len(read)}) | "
          f"{sum(r.doctor != 'healthy' for r in healthy)}/{len(healthy)} | {sum(r.doctor == 'healthy' for r in faulty)}/{len(faulty)} | "
          f"{at_exact / max(1, len(read)):.2f} ({at_exact}/{len(read)}) | {sum(bool(r.autotrainer) for r in healthy)}/{len(healthy)} |")
    confusion = Counter((r.label, r.doctor) for r in read if r.doctor != r.label)
    if confusion:
        print("doctor disagreements (label -> verdict): " + ", ".join(f"{a} -> {b} x{n}" for (a, b), n in confusion.most_common()))
    if verbose:
        for r in read:
            mark = "ok " if r.doctor == r.label else "   "
            print(f"  {mark}{r.entry['file'][:70]:70s} label {r.label:17s} doctor {','.join(r.doctor_all):40s} "
                  f"autotrainer {','.join(sorted(r.autotrainer)) or 'healthy'}")
            for a in r.assumptions:
                print(f"        assumed: {a}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["dev", "heldout", "all"], default="dev")
    parser.add_argument("--set", type=int, choices=sorted(SETS), default=1,
                        help="1: benchmarks/real_logs (split by source); 2-10: benchmarks/real_logs_2 to _10, "
                             "each scored whole (all but the newest are development data since their scoring)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    root = SETS[args.set]
    entries = tomllib.loads((root / "sources.toml").read_text())["log"]
    print(f"# real logs, set {args.set}: {len(entries)} in {root.name}/sources.toml; {date.today()} on {platform.node()} "
          f"({platform.machine()}, Python {platform.python_version()})")
    if args.set != 1:  # each collected after the one before was scored, and scored whole
        role = "held out" if args.set == max(SETS) else "scored once, development since"
        report(f"set {args.set}, {role}", [run_one(e, root) for e in entries], args.verbose)
        return
    groups = {"dev": [], "heldout": []}
    for e in entries:
        groups[split_of(e)].append(e)
    print(f"split by sha256(repo/path): {len(groups['dev'])} development, {len(groups['heldout'])} held out")
    names = ["dev", "heldout"] if args.split == "all" else [args.split]
    for name in names:
        report({"dev": "development", "heldout": "held-out"}[name], [run_one(e) for e in groups[name]], args.verbose)


if __name__ == "__main__":
    main()

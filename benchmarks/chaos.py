"""The chaos sweep: what a hostile user does to trainwise, and how each case ended.

Families (each case is judged by tests/chaos/harness.py: ok, traceback, silently wrong, wrote, bad message,
and for searches lost or overshooting trials):

- kills: ``trainwise train`` killed (SIGKILL) at a random moment from outside, or at a named point inside a
  checkpoint, History or manifest write (TRAINWISE_FAULT), then resumed until it finishes; the result
  must equal an uninterrupted run bit for bit (weights, History, summary; times aside);
- damage: 32 random bytes overwritten in each file of a finished run, then every read command and
  ``resume``; the output must equal the undamaged run's, or be one line (exit 2); read commands must
  not change the run directory (report: only report.html);
- inputs: the bad configs, input files and run files of tests/chaos/test_inputs.py and their neighbours;
- writers: two ``train`` (or a train and a resume) started together on one ``--out``: one runs, the
  other gets one line, and the run is whole;
- search: two ``trainwise search`` commands on one storage, one of them killed at a random moment (its
  workers with it), then the command again: the study must end with exactly ``--trials`` counted
  trials, none RUNNING, no process left over.

    python benchmarks/chaos.py                  # everything (about 30-60 minutes on 2 busy cores)
    python benchmarks/chaos.py --quick          # a few cases per family (about 10 minutes)
    python benchmarks/chaos.py --family damage  # one family
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from tempfile import mkdtemp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.chaos.harness import (READ_COMMANDS, SMALL, Result, copy_run, damage, fill, invoke, judge, make_run,  # noqa: E402
                                 new_inputs, normalized, run_cli, same_end, snapshot)

OUTCOMES = ("ok", "traceback", "silently wrong", "wrote", "bad message", "lost or overshooting trials")
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, Counter] = {}
        self.failures: list[str] = []

    def add(self, family: str, outcome: str, what: str) -> None:
        self.rows.setdefault(family, Counter())[outcome] += 1
        if outcome != "ok":
            self.failures.append(f"{family}: {outcome}: {what}")
            print(f"  FAIL {family}: {outcome}: {what}", file=sys.stderr, flush=True)

    def table(self) -> str:
        head = ["family", "cases", "passed", *OUTCOMES[1:]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        total = Counter()
        for family, counts in self.rows.items():
            total += counts
            lines.append("| " + " | ".join([family, str(sum(counts.values())), str(counts["ok"]), *(str(counts[o]) for o in OUTCOMES[1:])]) + " |")
        lines.append("| " + " | ".join(["all", str(sum(total.values())), str(total["ok"]), *(str(total[o]) for o in OUTCOMES[1:])]) + " |")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- kills

def final_state(run: Path) -> dict:
    import torch

    from trainwise.checkpointing import load_weights

    weights = load_weights(run / "checkpoints" / "final.safetensors")
    history = [{k: v for k, v in json.loads(line).items() if k not in ("time_s", "samples_per_s")}
               for line in (run / "history.jsonl").read_text().splitlines()]
    summary = {k: v for k, v in json.loads((run / "summary.json").read_text()).items() if k not in ("time_s", "report")}
    return {"weights": {k: torch.as_tensor(v).numpy().tobytes() for k, v in weights.items()}, "history": history, "summary": summary}


def kills(tally: Tally, work: Path, n: int, rng: random.Random) -> None:
    straight = work / "straight"
    assert make_run(straight, "--set", "train.epochs=3").code == 0
    expected = final_state(straight)
    points = ["write/.last.pt.ready@3", "write/.last.pt.ready@7", "checkpoint-rename@4", "write/history.jsonl@2",
              "write/manifest.json@5", "write/manifest.json@17", "write/best.safetensors@2", "write/summary.json@1",
              "eval@3", "step@11:TERM", "step@30:INT"]
    cases = points + [f"random@{i}" for i in range(max(0, n - len(points)))]
    for case in cases[:n] if n < len(points) else cases:
        out = work / f"kill-{case.replace('/', '_').replace('@', '-').replace(':', '-')}"
        args = [sys.executable, "-m", "trainwise", "train", *SMALL, "--set", "train.epochs=3", "--out", str(out)]
        if case.startswith("random"):  # from outside, at a moment nobody chose
            proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(3.0, 14.0))
            proc.kill()
            proc.wait()
        else:
            subprocess.run(args, env={**ENV, "TRAINWISE_FAULT": case}, capture_output=True, text=True)
        outcome, what = "ok", case
        for _ in range(4):  # resume until the run is finished (a random kill may land before the first checkpoint)
            if (out / "summary.json").is_file():
                break
            if not (out / "checkpoints" / "last.pt").exists() and not (out / "checkpoints" / "previous.pt").exists():
                got = run_cli(["train", *SMALL, "--set", "train.epochs=3", "--out", str(out), "--overwrite"])
            else:
                got = run_cli(["resume", str(out)])
            verdict = judge(got, None, read_only=False)
            if verdict != "ok" or got.code != 0:
                outcome, what = (verdict if verdict != "ok" else "traceback"), f"{case}: exit {got.code}: {got.err[-300:]}"
                break
        if outcome == "ok":
            try:
                if final_state(out) != expected:
                    outcome, what = "silently wrong", f"{case}: the resumed run differs from the uninterrupted one"
            except Exception as err:  # noqa: BLE001 - whatever it is, it is a failure of the case
                outcome, what = "traceback", f"{case}: {type(err).__name__}: {err}"
        tally.add("kills", outcome, what)


# ------------------------------------------------------------------------------------------ damage

def damage_family(tally: Tally, work: Path, seeds: int) -> None:
    pristine, twin = work / "pristine", work / "twin"
    assert make_run(pristine).code == 0 and make_run(twin, "--set", "optim.lr=0.003").code == 0
    inputs = new_inputs(work / "x.npy")
    run = work / "damaged" / "run"
    commands = {**READ_COMMANDS, "resume": ["resume", "{run}"]}
    expected = {}
    for command, args in commands.items():
        copy_run(pristine, run)
        got = invoke(fill(args, run=run, other=twin, x=inputs))
        got.out = normalized(got.out, run, twin)
        expected[command] = got
    files = sorted(k for k in snapshot(pristine) if k != "report.html")
    for name in files:
        for seed in range(seeds):
            for command, args in commands.items():
                copy_run(pristine, run)
                where = damage(run / name, seed=seed * 7919 + len(name))
                before = snapshot(run)
                got = invoke(fill(args, run=run, other=twin, x=inputs))
                got.out, got.files = normalized(got.out, run, twin), snapshot(run)
                if command == "resume" and got.code == 0 and got.out != expected[command].out and same_end(run, pristine):
                    got.out = expected[command].out  # it recovered (previous.pt) and trained to the same end
                outcome = judge(got, expected[command], read_only=command != "resume", before=before,
                                allowed_writes=("report.html",))
                tally.add("damage", outcome, f"{command} after {name} ({where}): exit {got.code} {got.err[-200:]!r}")


# ------------------------------------------------------------------------------------------ inputs

def inputs_family(tally: Tally, work: Path) -> None:
    from tests.chaos import test_inputs as cases

    pristine = work / "inputs-pristine"
    assert make_run(pristine).code == 0
    for name, (sets, *fragments) in cases.CONFIG_MISTAKES.items():
        out = work / "inputs-run"
        got = invoke(["train", *SMALL, *[a for s in sets for a in ("--set", s)], "--out", str(out)])
        outcome = judge(got, None, read_only=False)
        if outcome == "ok" and (got.code != 2 or (out / "history.jsonl").exists() or not all(f in got.err for f in fragments)):
            outcome = "silently wrong"
        tally.add("inputs", outcome, f"config {name}: exit {got.code} {got.err[-200:]!r}")
    for name, (filename, make, *fragments) in cases.PREDICT_INPUTS.items():
        path = work / filename
        make(path)
        got = invoke(["predict", str(pristine), str(path)])
        outcome = judge(got, None, read_only=False)
        tally.add("inputs", outcome if got.code == 2 else "silently wrong" if outcome == "ok" else outcome, f"predict {name}: exit {got.code}")
    for name, change in cases.DAMAGED_PREPROCESS.items():
        run = copy_run(pristine, work / "inputs-copy")
        (run / "manifest.json").unlink()
        path = run / "preprocess.json"
        path.write_text(change if isinstance(change, str) else json.dumps(json.loads(path.read_text()) | change))
        got = invoke(["predict", str(run), str(work / "x-ok.npy" if (work / "x-ok.npy").exists() else new_inputs(work / "x-ok.npy"))])
        outcome = judge(got, None, read_only=False)
        tally.add("inputs", outcome if got.code == 2 else "silently wrong" if outcome == "ok" else outcome, f"preprocess {name}: exit {got.code}")
    for name in ("summary.json", "env.json", "config.toml", "history.jsonl", "preprocess.json"):
        for how in ("malformed", "not UTF-8", "empty", "a JSON list"):
            for command in ("report", "diagnose", "compare", "evaluate", "predict", "resume"):
                run = copy_run(pristine, work / "inputs-copy")
                (run / "manifest.json").unlink()
                path = run / name
                path.write_bytes({"malformed": b"{ \"broken", "not UTF-8": b"\xff\xfe\x00bad" + path.read_bytes(), "empty": b"",
                                  "a JSON list": b"[1, 2, 3]\n"}[how])
                args = [command, str(run)] + ([str(pristine)] if command == "compare" else []) + \
                    ([str(work / "x-ok.npy")] if command == "predict" else [])
                before = snapshot(run)
                got = invoke(args)
                got.files = snapshot(run)
                tally.add("inputs", judge(got, None, read_only=command != "resume", before=before, allowed_writes=("report.html",)),
                          f"{command} with {how} {name}: exit {got.code} {got.err[-200:]!r}")


# ----------------------------------------------------------------------------------------- writers

def writers(tally: Tally, work: Path, n: int) -> None:
    for i in range(n):
        out = work / f"writers-{i}"
        args = [sys.executable, "-m", "trainwise", "train", *SMALL, "--set", "train.epochs=3", "--out", str(out)]
        second = args if i % 2 == 0 else None
        first = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if second is None:  # a resume racing a train: start it once the train has a checkpoint
            deadline = time.monotonic() + 120
            while not (out / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            second = [sys.executable, "-m", "trainwise", "resume", str(out)]
        other = subprocess.Popen(second, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = [Result(p.wait(), p.stdout.read(), p.stderr.read()) for p in (first, other)]
        verdicts = [judge(r, None, read_only=False) for r in results]
        codes = sorted(r.code for r in results)
        if any(v != "ok" for v in verdicts):
            outcome = next(v for v in verdicts if v != "ok")
        elif codes != [0, 2] or run_cli(["evaluate", str(out)]).code != 0:
            outcome = "silently wrong"
        else:
            outcome = "ok"
        tally.add("writers", outcome, f"case {i}: exits {codes}: {[r.err[-200:] for r in results]}")


# ------------------------------------------------------------------------------------------ search

def searches(tally: Tally, work: Path, n: int, rng: random.Random) -> None:
    import optuna

    from trainwise.tools.search import open_storage, row_state

    space = work / "space.toml"
    space.write_text("[optim.lr]\nlow = 1e-3\nhigh = 3e-2\nlog = true\n")
    trials = 6
    for i in range(n):
        out = work / f"search-{i}"
        cmd = [sys.executable, "-m", "trainwise", "search", "--space", str(space), "--trials", str(trials), "--sampler", "random",
               "--pruner", "none", "--out", str(out), "--set", "train.threads=1", "--set", "model.hidden=[16]",
               "--set", "train.epochs=6", "--set", "data.train_subset=400"]
        a = subprocess.Popen([*cmd, "--workers", "2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        b = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(rng.uniform(8.0, 25.0))
        os.kill(a.pid, signal.SIGKILL)  # the two-worker command dies; its spawned worker must follow
        a.wait()
        b.wait()
        time.sleep(3)
        orphans = subprocess.run(["pgrep", "-f", f"search-{i}"], capture_output=True, text=True).stdout.split()
        rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
        study = optuna.load_study(study_name=out.name, storage=open_storage(f"sqlite:///{out / 'study.db'}"))
        states = Counter(row_state(t) for t in study.get_trials())
        counted = states["COMPLETE"] + states["PRUNED"] + states["FAIL"]
        verdict = judge(Result(rerun.returncode, rerun.stdout, rerun.stderr), None, read_only=False)
        if verdict != "ok":
            outcome = verdict
        elif counted != trials or states["RUNNING"] or orphans:
            outcome = "lost or overshooting trials"
        else:
            outcome = "ok"
        tally.add("search", outcome, f"case {i}: {dict(states)}, orphans {orphans}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=["kills", "damage", "inputs", "writers", "search"], action="append")
    parser.add_argument("--quick", action="store_true", help="a few cases per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new temporary one)")
    args = parser.parse_args()
    families = args.family or ["kills", "damage", "inputs", "writers", "search"]
    rng = random.Random(args.seed)
    work = args.work or Path(mkdtemp(prefix="trainwise-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    started = time.monotonic()
    for family in families:
        print(f"{family} ...", file=sys.stderr, flush=True)
        if family == "kills":
            kills(tally, work, 6 if args.quick else 24, rng)
        elif family == "damage":
            damage_family(tally, work, 1 if args.quick else 3)
        elif family == "inputs":
            inputs_family(tally, work)
        elif family == "writers":
            writers(tally, work, 2 if args.quick else 6)
        else:
            searches(tally, work, 1 if args.quick else 3, rng)
        print(f"after {family} ({time.monotonic() - started:.0f} s):\n{tally.table()}", file=sys.stderr, flush=True)
    print(tally.table())
    print(f"\n{sum(sum(c.values()) for c in tally.rows.values())} cases in {time.monotonic() - started:.0f} s; work directory {work}")
    for failure in tally.failures:
        print(f"- {failure}")


if __name__ == "__main__":
    main()

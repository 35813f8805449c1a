"""The chaos harness: damage run directories, run commands the way a hostile user would, judge the outcome.

Shared by the fast CI cases (tests/chaos/) and the long sweep (benchmarks/chaos.py). Every case ends in
one of these outcomes:

- ``ok``: the command did what an undamaged run gives (same output), or refused in one line (exit 2,
  ``error: ...``) when it could not;
- ``traceback``: a Python traceback, or an exit code other than 0, 2 and the signal codes;
- ``silently wrong``: exit 0 with a result that differs from the undamaged run's;
- ``wrote``: a read command changed a file of the run directory;
- ``bad message``: exit 2 but not one ``error:`` line.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "train.epochs=2", "--set", "model.hidden=[16]", "--set", "checkpoint.every_n_steps=5",
         "--set", "train.deterministic=true", "--set", "train.progress=\"none\"", "--set", "train.threads=1"]
# The read commands and what each reads; {run} is the damaged run, {other} an undamaged one, {x} new inputs.
READ_COMMANDS = {
    "diagnose": ["diagnose", "{run}"],
    "report": ["report", "{run}"],
    "evaluate": ["evaluate", "{run}"],
    "evaluate-best": ["evaluate", "{run}", "--weights", "best"],
    "evaluate-last": ["evaluate", "{run}", "--weights", "last"],
    "compare": ["compare", "{run}", "{other}"],
    "predict": ["predict", "{run}", "{x}"],
    "predict-best": ["predict", "{run}", "{x}", "--weights", "best"],
}
WRITE_COMMANDS = {"resume": ["resume", "{run}"]}
# Which files each command reads (the CI cases damage only these; the sweep damages every file for every command).
READS = {
    "diagnose": ("history.jsonl", "summary.json", "config.toml", "manifest.json"),
    "report": ("history.jsonl", "summary.json", "config.toml", "env.json", "manifest.json"),
    "evaluate": ("config.toml", "checkpoints/final.safetensors", "manifest.json"),
    "evaluate-best": ("checkpoints/best.safetensors",),
    "evaluate-last": ("checkpoints/last.pt",),
    "compare": ("history.jsonl", "summary.json", "env.json", "config.toml"),
    "predict": ("preprocess.json", "checkpoints/final.safetensors", "config.toml"),
    "predict-best": ("checkpoints/best.safetensors",),
    "resume": ("checkpoints/last.pt", "checkpoints/previous.pt", "history.jsonl", "config.toml", "manifest.json"),
}
SIGNAL_CODES = {130, 137, 143}


@dataclass
class Result:
    code: int
    out: str
    err: str
    files: dict[str, str] = field(default_factory=dict)  # run directory after the command: name -> sha256

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None) -> Result:
    """``python -m trainwise ARGS`` in a subprocess with one thread and this checkout on the path."""
    full = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "trainwise", *args], capture_output=True, text=True, env=full,
                          timeout=timeout, cwd=cwd or ROOT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def invoke(args: list[str]) -> Result:
    """The CLI in this process (fast; an exception that escapes the CLI counts as a traceback: exit 1)."""
    from typer.testing import CliRunner

    from trainwise.cli import app

    result = CliRunner().invoke(app, args)
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += f"\nTraceback (most recent call last): {type(result.exception).__name__}: {result.exception}"
    return Result(result.exit_code, result.stdout, err)


def snapshot(run_dir: Path) -> dict[str, str]:
    return {p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def damage(path: Path, seed: int, nbytes: int = 32) -> str:
    """Overwrite ``nbytes`` random bytes at a random place inside ``path``; returns where."""
    rng = random.Random(seed)
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(bytes(rng.randrange(256) for _ in range(nbytes)))
        return "filled an empty file"
    start = rng.randrange(max(1, len(data) - nbytes))
    new = bytes(rng.randrange(256) for _ in range(min(nbytes, len(data))))
    if new == bytes(data[start:start + len(new)]):  # vanishingly rare; keep the case a real damage
        new = bytes((b + 1) % 256 for b in new)
    data[start:start + len(new)] = new
    path.write_bytes(bytes(data))
    return f"{len(new)} bytes at {start}"


def normalized(text: str, *paths: Path) -> str:
    """Output with the run paths replaced, timings dropped: what two equivalent runs print alike."""
    for i, p in enumerate(paths):
        text = text.replace(str(p), f"<path{i}>")
    text = re.sub(r"\d+(\.\d+)?s\b", "<s>", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("warning:"))


def judge(result: Result, expected: Result | None, *, read_only: bool, before: dict[str, str] | None = None,
          allowed_writes: tuple[str, ...] = ()) -> str:
    """The outcome of a case (see the module docstring)."""
    if "Traceback (most recent call last)" in result.text or result.code not in (0, 2, *SIGNAL_CODES):
        return "traceback"
    if read_only and before is not None:
        changed = {k for k in set(before) | set(result.files) if before.get(k) != result.files.get(k)} - set(allowed_writes)
        if changed:
            return "wrote"
    if result.code == 2:
        lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("warning:")]
        return "ok" if len(lines) == 1 and lines[0].startswith("error: ") else "bad message"
    if result.code == 0 and expected is not None and result.out != expected.out:
        return "silently wrong"
    return "ok"


def same_end(run, pristine) -> bool:
    """The run ends with the pristine run's final weights and History (times aside)."""
    import json

    from tests.helpers import same_weights, without_times
    from trainwise.checkpointing import load_weights

    def history(d):
        return without_times([json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()])

    final = "checkpoints/final.safetensors"
    return same_weights(load_weights(run / final), load_weights(pristine / final)) and history(run) == history(pristine)


def make_run(out: Path, *extra: str) -> Result:
    return run_cli(["train", *SMALL, *extra, "--out", str(out)])


def new_inputs(path: Path) -> Path:
    """Raw digits images (the run's units) to predict on."""
    from sklearn.datasets import load_digits

    np.save(path, load_digits().data[:40].astype(np.float32))
    return path


def fill(args: list[str], **paths: Path) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]


def copy_run(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock")))


def run_files(run_dir: Path) -> list[str]:
    """Every file a finished run wrote (the lock file aside)."""
    return sorted(k for k in snapshot(run_dir) if not k.endswith(".html"))


def env_without_faults() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TRAINWISE_FAULT"}

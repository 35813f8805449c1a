"""Bad inputs through the CLI: each is one line on stderr starting with "error:", exit code 2, no traceback,
and it says what was wrong (the fragment checked here), before any training happens."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import run_cli
from trainwise.cli import app

QUIET = ["--set", "train.progress='none'", "--set", "train.epochs=1", "--set", "model.hidden=[8]"]

MODULE = '''import torch

def one_channel(**kwargs):
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))

def five_outputs(**kwargs):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5))
'''


def write_files(d) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    (d / "bad.toml").write_text("[train\nepochs = 3\n")
    (d / "bad.yaml").write_text("train: [1, 2\n  epochs: 3\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "binary.toml").write_bytes(b"\xff\xfe[train]\n")
    (d / "unknown.toml").write_text("[optim]\nlearning_rate = 0.1\n")
    (d / "types.yaml").write_text("train:\n  epochs: many\n")
    (d / "models.py").write_text(MODULE)
    np.savez(d / "vectors.npz", x=rng.random((60, 28), dtype=np.float32), y=labels)
    np.savez(d / "rgb.npz", x=rng.random((60, 3, 8, 8), dtype=np.float32), y=labels)
    np.savez(d / "four.npz", x=rng.random((60, 4), dtype=np.float32), y=labels)
    np.savez(d / "empty.npz", x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    np.savez(d / "one_class.npz", x=rng.random((60, 4), dtype=np.float32), y=np.zeros(60, np.int64))
    np.savez(d / "negative.npz", x=rng.random((60, 4), dtype=np.float32), y=labels - 1)
    (d / "labels12.csv").write_text("a,b,label\n" + "".join(f"{i},{i * 2},{1 + i % 2}\n" for i in range(40)))
    np.savez(d / "halves.npz", x=rng.random((60, 4), dtype=np.float32), y=labels + 0.5)
    np.savez(d / "soft.npz", x=rng.random((60, 4), dtype=np.float32), y=rng.random((60, 3)))
    x = rng.random((60, 4), dtype=np.float32)
    x[17, 2] = np.nan
    np.savez(d / "nan.npz", x=x, y=labels)
    np.savez(d / "inf_features.npz", x=rng.random((60, 4), dtype=np.float32), f=np.where(np.arange(60)[:, None] == 9, np.inf, 0.0) * np.ones((60, 2)), y=labels)
    np.savez(d / "objects.npz", x=np.array([{"a": 1}] * 60, dtype=object), y=labels)
    whole = (d / "rgb.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    damaged = bytearray(whole)
    damaged[len(whole) // 3 : len(whole) // 3 + 64] = b"\0" * 64  # inside x's bytes: the zip directory is intact
    (d / "damaged.npz").write_bytes(bytes(damaged))
    (d / "truncated.csv").write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(40)) + "41,8")
    (d / "latin1.csv").write_bytes("a,b,label\n1,2,caf\xe9\n".encode("latin-1"))


def arrays(name: str, *more: str) -> list[str]:
    return ["train", *QUIET, "--set", "data.name='arrays'", "--set", f"data.path='{{d}}/{name}'", *more]


CASES = {
    "malformed TOML": (["train", "{d}/bad.toml"], "malformed config"),
    "malformed YAML": (["train", "{d}/bad.yaml"], "malformed config"),
    "YAML that is not a table": (["train", "{d}/list.yaml"], "expected a table of sections"),
    "config not UTF-8": (["train", "{d}/binary.toml"], "expected a readable UTF-8 text file"),
    "config file missing": (["train", "{d}/none.toml"], "not found"),
    "unknown key in a file": (["train", "{d}/unknown.toml"], "unknown key 'optim.learning_rate'"),
    "unknown key in --set": (["train", "--set", "optim.learning_rat=0.1"], "unknown key 'optim.learning_rat'"),
    "unknown section": (["train", "--set", "trian.epochs=3"], "unknown key 'trian'"),
    "wrong type in a file": (["train", "{d}/types.yaml"], "invalid value for 'train.epochs'"),
    "wrong type in --set": (["train", "--set", "data.batch_size=[64]"], "invalid value for 'data.batch_size'"),
    "value out of range": (["train", "--set", "optim.lr=-0.1"], "greater than 0"),
    "infinite value": (["train", "--set", "optim.lr=inf"], "invalid value for 'optim.lr'"),
    "layer size zero": (["train", "--set", "model.hidden=[64, 0]"], "layer sizes > 0"),
    "keys that do not fit together": (["train", "--set", "schedule.name=onecycle", "--set", "schedule.warmup_epochs=2"],
                                      "the keys of [schedule] do not fit together; expected onecycle rises by itself"),
    "one class selected": (["train", "--set", "data.classes=[3]"], "at least two distinct class ids"),
    "--set without =": (["train", "--set", "optim.lr"], "bad --set override"),
    "missing dataset file": (arrays("none.npz"), "not found"),
    "truncated NPZ": (arrays("truncated.npz"), "cannot read"),
    "damaged NPZ member": (arrays("damaged.npz"), "cannot read the arrays"),
    "object arrays in NPZ": (arrays("objects.npz"), "cannot read the arrays"),
    "truncated CSV": (["train", *QUIET, "--set", "data.name='csv'", "--set", "data.path='{d}/truncated.csv'", "--set", "data.target='label'"],
                      "line 42 has 2 fields"),
    "CSV not UTF-8": (["train", *QUIET, "--set", "data.name='csv'", "--set", "data.path='{d}/latin1.csv'", "--set", "data.target='label'"],
                      "cannot read"),
    "vectors for a CNN": (arrays("vectors.npz", "--set", "model.name='cnn'"), "needs image inputs"),
    "3 channels for a 1-channel model": (arrays("rgb.npz", "--set", "model.name='models:one_channel'"), "cannot take the data's inputs"),
    "labels out of range": (arrays("negative.npz"), "not class ids 0..2; expected 3 classes numbered 0..2; received label values {-1, 0, 1}"),
    "binary labels not 0/1": (["train", *QUIET, "--set", "data.name='csv'", "--set", "data.path='{d}/labels12.csv'", "--set", "data.target='label'"],
                              "--set data.classes=[1,2]"),
    "labels that are not whole numbers": (arrays("halves.npz"), "not whole numbers; expected classes: integer ids, or text; received 0.5 at sample 0"),
    "several values per label, not one-hot": (arrays("soft.npz"), "rows are not one-hot"),
    "NaN in inputs": (arrays("nan.npz"), "non-finite value in sample 17"),
    "Inf in extra features": (arrays("inf_features.npz", "--set", "data.features='f'", "--set", "model.name='fusion'"), "sample 9"),
    "empty dataset": (arrays("empty.npz"), "the training set is empty"),
    "a single class": (arrays("one_class.npz"), "single class"),
    "too few samples to split": (["train", *QUIET, "--set", "data.train_subset=3"], "data.train_subset=3"),
    "model output does not match the classes": (arrays("four.npz", "--set", "model.name='models:five_outputs'"), "3 logits (one per class)"),
    "resume a missing run directory": (["resume", "{d}/no-run"], "does not exist"),
    "resume a directory that is no run": (["resume", "{d}"], "not a trainwise run directory"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    write_files(d)
    return d


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, files, monkeypatch):
    args, fragment = CASES[case]
    monkeypatch.syspath_prepend(str(files))  # for model.name = "models:..."
    result = CliRunner().invoke(app, [a.replace("{d}", str(files)) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exception, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_bad_input_in_a_real_process_has_no_traceback(files):
    proc = run_cli("train", *QUIET, "--set", "data.name='arrays'", "--set", f"data.path='{files}/nan.npz'")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "sample 17" in proc.stderr, proc.stderr

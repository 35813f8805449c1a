"""What a new user runs into first, through the CLI as they would type it: one line, exit 2, a fix that works."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli_env, run_cli

QUIET = ["--set", "train.epochs=1", "--set", "train.progress='none'", "--set", "train.report=false"]


def one_line_error(done) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


# ----------------------------------------------------------------------------------------- config
def test_a_bad_set_value_is_attributed_to_set_not_to_the_config_file(tmp_path):
    line = one_line_error(run_cli("train", "configs/digits.toml", "--set", "optim.lr=-1", "--out", str(tmp_path / "r")))
    assert line.startswith("error: --set optim.lr: invalid value") and "--set optim.lr=VALUE" in line
    line = one_line_error(run_cli("train", "configs/digits.toml", "--set", "optim.learning_rate=0.1", "--out", str(tmp_path / "r")))
    assert line.startswith("error: --set optim.learning_rate: unknown key")


def test_a_bad_value_in_the_file_is_still_attributed_to_the_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optim]\nlr = -1\n")
    line = one_line_error(run_cli("train", str(cfg), "--set", "train.epochs=1", "--out", str(tmp_path / "r")))
    assert line.startswith(f"error: {cfg}: invalid value for 'optim.lr'")


# ------------------------------------------------------------------------------------------- CSV
def test_an_empty_csv_cell_names_its_line_and_column(tmp_path):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    names = [n.replace(" ", "_") for n in d.feature_names]
    rows = [",".join([*names, "label"])] + [",".join([*map(str, x), str(y)]) for x, y in zip(d.data, d.target)]
    cells = rows[5].split(",")
    cells[2] = ""
    rows[5] = ",".join(cells)  # data row 5 is line 6 of the file
    (tmp_path / "bc.csv").write_text("\n".join(rows) + "\n")
    data = ["--set", "data.name='csv'", "--set", f"data.path='{tmp_path / 'bc.csv'}'", "--set", "data.target='label'"]
    line = one_line_error(run_cli("train", *QUIET, *data, "--out", str(tmp_path / "r")))
    assert f"line 6, column '{names[2]}' holds an empty cell" in line


# -------------------------------------------------------------------------------- model factories
FACTORIES = '''
import math
from torch import nn

def make_net(input_shape, feature_dim, out_dim, width=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(), nn.Linear(width, out_dim))

def wants_classes(n_classes):
    return nn.Linear(64, n_classes)

def raises(input_shape, out_dim):
    raise RuntimeError("this factory is broken")

def not_a_module(**kwargs):
    return "a string"

NOT_CALLABLE = 3
'''


@pytest.fixture()
def factory_dir(tmp_path) -> Path:
    (tmp_path / "usernets.py").write_text(FACTORIES)
    (tmp_path / "syntax_error.py").write_text("def f(:\n")
    (tmp_path / "fails_at_import.py").write_text("import math\nmath.nonexistent_function()\n")
    return tmp_path


def _train_factory(factory_dir: Path, name: str, *extra: str):
    env = cli_env()
    env["PYTHONPATH"] += f":{factory_dir}"
    return run_cli("train", *QUIET, "--set", f"model.name='{name}'", *extra, "--out", str(factory_dir / "run"), env=env)


def test_the_documented_factory_contract_trains(factory_dir):
    done = _train_factory(factory_dir, "usernets:make_net", "--set", "model.kwargs.width=8")
    assert done.returncode == 0, done.stderr
    assert "test_acc" in done.stdout


@pytest.mark.parametrize(("name", "extra", "says"), [
    ("usernets:wants_classes", (), "needs arguments trainwise does not pass: n_classes; expected factory(input_shape, feature_dim, out_dim"),
    ("usernets:raises", (), "model factory 'usernets:raises' raised RuntimeError: this factory is broken"),
    ("usernets:not_a_module", (), "did not return an nn.Module"),
    ("usernets:NOT_CALLABLE", (), "is not callable"),
    ("usernets:missing", (), "module 'usernets' has no 'missing'"),
    ("usernets:make_net", ("--set", "model.kwargs.depth=3"), "takes no argument 'depth' (from model.kwargs)"),
    ("syntax_error:f", (), "received SyntaxError: invalid syntax"),
    ("fails_at_import:f", (), "received AttributeError: module 'math' has no attribute 'nonexistent_function'"),
    ("no_such_module:f", (), "No module named 'no_such_module'"),
])
def test_a_broken_factory_is_one_line(factory_dir, name, extra, says):
    assert says in one_line_error(_train_factory(factory_dir, name, *extra))

"""Packaging: the wheel, the console entry points, one help line per command, shell completion, type hints."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import typing
import zipfile

import trainwise
from tests.ecosystem.eco_helpers import invoke
from tests.helpers import ROOT


def command_names() -> list[str]:
    from trainwise.cli import app

    return [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"trainwise {trainwise.__version__}\n"


def test_help_lists_every_command_on_one_line():
    env = {"OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "trainwise", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: trainwise [OPTIONS] COMMAND [ARGS]...")
    listing = proc.stdout.split("Commands:\n", 1)[1].rstrip("\n").splitlines()
    names = command_names()
    assert [line.split()[0] for line in listing] == names  # no wrapped continuation lines
    for line in listing:
        assert not line.endswith("..."), f"shorten the first sentence of this command's docstring: {line.strip()!r}"


def test_help_and_version_do_not_import_torch():
    # --help, --version and shell completion answer at once: torch loads only when a command needs it.
    env = {"OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    code = ("import sys; from typer.testing import CliRunner; from trainwise.cli import app; "
            "out = CliRunner().invoke(app, ['--help']).stdout + CliRunner().invoke(app, ['--version']).stdout; "
            "import trainwise; print('torch' in sys.modules, 'Commands' in out, trainwise.__version__ in out)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert proc.stdout.split() == ["False", "True", "True"], proc.stderr


def test_shell_completion():
    # The script `trainwise --show-completion` prints for bash (that option detects the user's shell from
    # the process tree, which a test runner's worker processes do not reliably have).
    from typer.completion import get_completion_script

    script = get_completion_script(prog_name="trainwise", complete_var="_TRAINWISE_COMPLETE", shell="bash")
    assert "_TRAINWISE_COMPLETE=complete_bash" in script
    # What the shell runs on <TAB> after "trainwise pre".
    result = invoke(_TRAINWISE_COMPLETE="complete_bash", COMP_WORDS="trainwise pre", COMP_CWORD="1")
    assert result.exit_code == 0 and result.stdout.split() == ["predict"]


def test_wheel_has_the_package_the_type_marker_and_the_command(tmp_path):
    src = tmp_path / "src"  # build a copy: the build writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT / "trainwise", src / "trainwise", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("trainwise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("trainwise/py.typed", "trainwise/cli.py", "trainwise/tools/predict.py", "trainwise/tools/export.py",
                   "trainwise/callbacks/mlflow_logger.py", "trainwise/callbacks/tensorboard_logger.py", "trainwise/__main__.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert re.search(r"^trainwise = trainwise\.cli:run$", zipfile.ZipFile(wheel).read(entry_points).decode(), re.M)


def test_public_api_is_type_hinted():
    for name in ("fit", "resume", "evaluate", "predict", "export", "load_config"):
        fn = getattr(trainwise, name)
        hints = typing.get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
        missing = [p.name for p in params if p.name not in hints]
        assert not missing and "return" in hints, f"trainwise.{name}: no type hints for {missing or 'the return value'}"

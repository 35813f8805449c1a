"""The command line: thin wrappers over the Python API.

User mistakes (trainwise.errors.UserError) print one line to stderr and exit with code 2, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from trainwise.errors import UserError
from trainwise.interrupt import TrainingInterrupted

app = typer.Typer(
    name="trainwise",
    help="Train PyTorch networks the way practitioners do, and learn why a run went wrong.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)


def user_errors(fn):
    """Turn a UserError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(code=2) from None
        except TrainingInterrupted as err:  # SIGINT/SIGTERM during training: checkpoint saved, say how to resume
            print(err, file=sys.stderr)
            raise typer.Exit(code=err.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(code=130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from trainwise import __version__

        print(f"trainwise {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False) -> None:
    """trainwise command line."""


ConfigArg = Annotated[Optional[Path], typer.Argument(help="TOML or YAML config (default: built-in defaults, digits + MLP).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config value: key.sub=value (repeatable).")]


def _print_summary(run) -> None:
    test = run.summary.get("test")
    line = f"run directory: {run.run_dir}" if run.run_dir else "done"
    if test:
        line += f" | test_acc {test['acc']:.4f} | test_loss {test['loss']:.4f} | test_macro_f1 {test['macro_f1']:.4f}"
    print(line)
    print(f"stopped: {run.summary['stop_reason']}")
    if run.summary.get("report"):
        print(f"report: {run.summary['report']}")


@app.command()
@user_errors
def train(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/<data>-<model>-<time>).")] = None,
) -> None:
    """Train, validate every epoch, test at the end, and write a run directory."""
    from trainwise.api import default_run_dir, fit
    from trainwise.config import load_config

    cfg = load_config(config, set_ or [])
    run = fit(cfg, out=out or default_run_dir(cfg))
    _print_summary(run)


@app.command()
@user_errors
def resume(run_dir: Annotated[Path, typer.Argument(help="Run directory to continue.")]) -> None:
    """Continue an interrupted run from its last checkpoint."""
    from trainwise.api import resume as resume_run

    _print_summary(resume_run(run_dir))


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    split: Annotated[str, typer.Option(help="test | val | train")] = "test",
    weights: Annotated[str, typer.Option(help="final | best | last")] = "final",
) -> None:
    """Re-score a saved run on a split; prints the metrics as JSON."""
    from trainwise.api import evaluate as evaluate_run

    metrics = evaluate_run(run_dir, split=split, weights=weights)
    print(json.dumps({k: v for k, v in metrics.items() if not k.startswith("per_class")}, indent=2))


@app.command()
@user_errors
def report(
    path: Annotated[Path, typer.Argument(help="Run directory or history file (history.jsonl, Keras/Lightning CSV).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file (default: RUN/report.html).")] = None,
) -> None:
    """Write the self-contained HTML report for a run or a history file."""
    from trainwise.report import render_report

    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist", expected="a run directory or a history file")
    print(render_report(path, out))


@app.command()
@user_errors
def diagnose(
    path: Annotated[Path, typer.Argument(help="Run directory, history.jsonl, Keras CSVLogger CSV or Lightning metrics.csv.")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"findings": [...]} and nothing else.')] = False,
    column: Annotated[Optional[list[str]], typer.Option("--column", "-c", help="Map a CSV column to a trainwise key: COLUMN=KEY (repeatable).")] = None,
    expect: Annotated[Optional[list[str]], typer.Option("--expect", help='An expectation such as "val_acc >= 0.85 at epoch 1" (repeatable).')] = None,
) -> None:
    """Diagnose a run from its history: findings with epochs, evidence and concrete fixes."""
    from trainwise.doctor import diagnose as run_doctor

    columns = {}
    for item in column or []:
        if "=" not in item:
            raise UserError("bad --column", expected="COLUMN=KEY, e.g. --column accuracy=train_acc", received=item)
        src, dst = item.split("=", 1)
        columns[src] = dst
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist", expected="a run directory or a history file")
    result = run_doctor(path, columns=columns or None, expect=expect)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for finding in result:
        print(finding)
    for miss in result.misses:
        print(miss)


@app.command("config-reference")
@user_errors
def config_reference(out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = None) -> None:
    """Print the config reference (every key, type, default and meaning), generated from the schema."""
    from trainwise.docs_gen import config_reference_markdown

    text = config_reference_markdown()
    if out:
        out.write_text(text)
    else:
        print(text)


@app.command("scratch-example")
def scratch_example() -> None:
    """Walk through one forward/backward/update step of a tiny NumPy network, number by number."""
    from trainwise.scratch.example import main as example_main

    raise typer.Exit(example_main())


@app.command("scratch-demo")
def scratch_demo(names: Annotated[Optional[list[str]], typer.Argument(help="symmetry | init | vanishing | clipping | all")] = None) -> None:
    """NumPy demonstrations: zero-init symmetry, activation variance per init, vanishing gradients, clipping."""
    from trainwise.scratch.demos import main as demos_main

    raise typer.Exit(demos_main(names or ["all"]))


@app.command()
@user_errors
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories trained on the same data config.")],
    split: Annotated[str, typer.Option(help="test | val")] = "test",
    weights: Annotated[str, typer.Option(help="final | best | ema")] = "final",
) -> None:
    """Average the class probabilities of several runs on a split; prints the ensemble's and each member's metrics as JSON."""
    from trainwise.techniques.ensemble import evaluate_ensemble

    metrics = evaluate_ensemble(run_dirs, split=split, weights=weights)
    print(json.dumps({k: v for k, v in metrics.items() if not k.startswith("per_class")}, indent=2))


def run() -> None:
    app()

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
        except KeyboardInterrupt as err:
            print(str(err) or "interrupted", file=sys.stderr)
            raise typer.Exit(code=getattr(err, "exit_code", 130)) from None

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
DevicesOpt = Annotated[int, typer.Option("--devices", min=1, help="Train data-parallel in N local processes (one per GPU, or CPU processes); see docs/distributed.md.")]


def _print_summary(run) -> None:
    from trainwise.distributed import is_main_process

    if not is_main_process():  # data-parallel: rank 0 speaks for the run
        return
    test = run.summary.get("test")
    line = f"run directory: {run.run_dir}" if run.run_dir else "done"
    if test:
        line += f" | test_acc {test['acc']:.4f} | test_loss {test['loss']:.4f} | test_macro_f1 {test['macro_f1']:.4f}"
    print(line)
    print(f"stopped: {run.summary['stop_reason']}")
    for r in run.summary.get("repairs", []):  # train --autofix
        how = f"rolled back to epoch {r['resumed_from']}" if r["action"] == "rollback" else "restarted"
        print(f"autofix: {r['finding']} at epoch {r['epoch']}: {r['change']} ({how})")
    if run.findings:  # the final diagnosis in one line; the live lines above (if any) and `diagnose` give the reasons
        codes = ", ".join(f"{f.code} ({f.severity})" if f.code != "healthy" else "healthy" for f in run.findings)
        hint = f"; details: trainwise diagnose {run.run_dir}" if run.run_dir and any(f.code != "healthy" for f in run.findings) else ""
        print(f"doctor: {codes}{hint}")
    if run.summary.get("report"):
        print(f"report: {run.summary['report']}")


@app.command()
@user_errors
def train(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/<data>-<model>-<time>).")] = None,
    devices: DevicesOpt = 1,
    profile_startup: Annotated[bool, typer.Option("--profile-startup", help="Print where the wall-clock time went (imports, data, model, epochs, report ...) and write it to startup_profile.json.")] = False,
    autofix: Annotated[bool, typer.Option("--autofix", help="Repair on an error-level finding: roll back or restart with its fix (doctor.autofix).")] = False,
    show_loop: Annotated[bool, typer.Option("--show-loop", help="Print which callbacks run at each event of this config's loop, and exit without training.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in --out (its files are removed first).")] = False,
) -> None:
    """Train from a config and write a run directory.

    Validates every epoch, tests at the end, and prints the test metrics. A --out that already holds a
    run is refused unless --overwrite is given.
    """
    from trainwise import profiling

    if profile_startup:
        profiling.enable()
        profiling.add("process start and command line", profiling.process_age() or 0.0)
        profiling.lap_start()
    from trainwise import distributed
    from trainwise.api import claim_run_dir, default_run_dir, fit
    from trainwise.config import load_config
    from trainwise.rundir import RunDir

    profiling.lap("import torch and trainwise")

    set_ = [*(set_ or []), *(["doctor.autofix=true"] if autofix else [])]
    cfg = load_config(config, set_)
    if show_loop:
        from trainwise.trainer import Trainer

        Trainer(cfg).describe_loop()
        return
    out = out or default_run_dir(cfg, claim=not distributed.launched())
    if devices > 1 and not distributed.launched():  # start the processes; each runs this command without --devices
        if not overwrite:
            claim_run_dir(RunDir(out), overwrite=False)  # the refusal comes once, from here
        argv = ["train", *([str(config)] if config else []), *[a for s in set_ or [] for a in ("--set", s)], "--out", str(out),
                *(["--overwrite"] if overwrite else [])]
        raise typer.Exit(distributed.launch(devices, argv, f"trainwise resume {out} --devices {devices}"))
    with distributed.failures_reported(f"trainwise resume {out}, under the same launcher"):
        run = fit(cfg, out=out, overwrite=overwrite)
    _print_summary(run)
    if profile_startup and distributed.is_main_process():
        _print_profile(run.run_dir)
    global _finished_run
    _finished_run = True


def _print_profile(run_dir: Path | None) -> None:
    """The wall clock of this process split into phases; exit is the one part only an outside clock sees."""
    from trainwise import atomic, profiling
    from trainwise.rundir import PROFILE

    result = profiling.report(total_s=profiling.process_age())
    print(profiling.table(result))
    if run_dir is not None:
        atomic.write_json(Path(run_dir) / PROFILE, result)


@app.command()
@user_errors
def resume(run_dir: Annotated[Path, typer.Argument(help="Run directory to continue.")], devices: DevicesOpt = 1,
           set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Only train.epochs=N: extend the run to N epochs (the LR schedule is stretched).")] = None) -> None:
    """Continue an interrupted run, or extend a finished one.

    An interrupted run continues from its last checkpoint; ``--set train.epochs=N`` extends a run.
    """
    from trainwise import distributed
    from trainwise.api import check_run_dir
    from trainwise.api import resume as resume_run
    from trainwise.errors import RunFinished

    epochs = _resume_epochs(set_ or [])
    if devices > 1 and not distributed.launched():
        check_run_dir(run_dir)
        more = [a for s in set_ or [] for a in ("--set", s)]
        raise typer.Exit(distributed.launch(devices, ["resume", str(run_dir), *more], f"trainwise resume {run_dir} --devices {devices}"))
    try:
        with distributed.failures_reported(f"trainwise resume {run_dir}, under the same launcher"):
            run = resume_run(run_dir, epochs=epochs)
    except RunFinished as done:
        print(done)
        raise typer.Exit(code=0) from None
    _print_summary(run)
    global _finished_run
    _finished_run = True


def _resume_epochs(items: list[str]) -> int | None:
    """``--set train.epochs=N`` -> N; resume changes nothing else (a new config is a new run)."""
    from trainwise.config import parse_override

    epochs = None
    for item in items:
        key, value = parse_override(item)
        if key != "train.epochs":
            raise UserError(f"resume cannot change {key}", expected="--set train.epochs=N (more epochs) and nothing else",
                            received=item, fix="start a new run with trainwise train (finetune.init_from=RUN starts from this run's weights)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError("bad --set train.epochs", expected="a whole number of epochs >= 1", received=item)
        epochs = value
    return epochs


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    split: Annotated[str, typer.Option(help="test | val | train")] = "test",
    weights: Annotated[str, typer.Option(help="final | best | last | ema")] = "final",
    as_json: Annotated[bool, typer.Option("--json", help="Print every metric as JSON instead of the summary.")] = False,
) -> None:
    """Re-score a saved run on a split.

    Prints the metrics and the confusion matrix (--json: all of it as JSON).
    """
    from trainwise.api import evaluate as evaluate_run
    from trainwise.tools.metrics_text import class_names_of, metrics_text

    metrics = evaluate_run(run_dir, split=split, weights=weights)
    if as_json:
        print(json.dumps({k: v for k, v in metrics.items() if not k.startswith("per_class")}, indent=2))
        return
    names = class_names_of(run_dir, len(metrics.get("confusion") or []))
    print(metrics_text(metrics, names, f"{run_dir}, {split} split, {weights} weights"))


@app.command()
@user_errors
def report(
    path: Annotated[Path, typer.Argument(help="Run directory or history file (history.jsonl, Keras/Lightning CSV).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file (default: RUN/report.html).")] = None,
) -> None:
    """Write the HTML report of a run or a history file."""
    from trainwise.report import render_report

    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist", expected="a run directory or a history file")
    print(render_report(path, out))


@app.command()
@user_errors
def diagnose(
    path: Annotated[Path, typer.Argument(help="Run directory or a log: history.jsonl, Keras/Lightning/fastai CSV, trainer_state.json, TensorBoard events, text log.")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"findings": [...], "expectation_misses": [...], "assumptions": [...], "runs": N} and nothing else (README: diagnose --json).')] = False,
    column: Annotated[Optional[list[str]], typer.Option("--column", "-c", help="Map a log column to a trainwise key: COLUMN=KEY (repeatable).")] = None,
    expect: Annotated[Optional[list[str]], typer.Option("--expect", help='An expectation such as "val_acc >= 0.85 at epoch 1" (repeatable).')] = None,
    classes: Annotated[Optional[int], typer.Option("--classes", help="Number of classes K (chance levels ln K, 1/K); inferred when absent.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="multiclass | binary | regression")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML/YAML/JSON file with a foreign run's known hyperparameters (optimizer, lr, schedule, batch_size, label_smoothing, mixup, ...).")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Which of several runs appended to one log: K (1-based) or all (default: the last).")] = None,
) -> None:
    """Diagnose a run or a foreign training log.

    Prints the findings with their evidence and fixes, and the assumptions made. Exits 0 when nothing is
    at error level and every expectation held, 1 on an error-level finding or a missed expectation, 2 on
    a user mistake (a path or expectation that cannot be read).
    """
    from trainwise.doctor import diagnose as run_doctor
    from trainwise.doctor.codes import VERDICTS

    columns = {}
    for item in column or []:
        if "=" not in item:
            raise UserError("bad --column", expected="COLUMN=KEY, e.g. --column accuracy=train_acc", received=item)
        src, dst = item.split("=", 1)
        columns[src] = dst
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist", expected="a run directory or a log file")
    if run is not None and run != "all" and not run.isdigit():
        raise UserError("bad --run", expected="a run number (1, 2, ...) or all", received=run)

    def one(k: int | None):
        return run_doctor(path, config, columns=columns or None, expect=expect, classes=classes, task=task, run=k)

    results = [one(None if run is None else int(run) if run != "all" else None)]
    if run == "all" and results[0].runs > 1:  # each run of the log, in order, each diagnosed on its own
        results = [one(k) for k in range(1, results[0].runs + 1)]
    if as_json:
        dumped = [r.to_dict() for r in results]
        print(json.dumps(dumped[0] if len(dumped) == 1 else dumped, indent=2))
    else:
        for k, result in enumerate(results, start=1):
            if len(results) > 1:
                print(f"run {k} of {len(results)}:")
            for finding in result:
                if finding.code in VERDICTS and result.misses:
                    continue  # a run that missed an expectation is not called healthy
                print(finding)
            for miss in result.misses:
                print(miss)
            for said in result.assumptions:
                print(f"assumed: {said}")
    raise typer.Exit(max(r.exit_code for r in results))  # 1: an error-level finding or a missed expectation (docs/doctor.md)


@app.command("fix")
@user_errors
def fix_run(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to repair (written by trainwise train).")],
    rounds: Annotated[int, typer.Option("--rounds", "-n", help="Re-runs at most (one change each).")] = 3,
    budget_epochs: Annotated[Optional[int], typer.Option("--budget-epochs", help="Epochs the re-runs may use in all (default: no limit).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where the attempts and fix.json go (default: RUN/fix).")] = None,
    metric: Annotated[str, typer.Option("--metric", "-m", help="Validation key to compare on (losses are minimised).")] = "val_acc",
    noise: Annotated[str, typer.Option("--noise", help="spread (epoch-to-epoch, free) | repeat (one more run on the next seed)")] = "spread",
    lr_test: Annotated[bool, typer.Option("--lr-test/--no-lr-test", help="Take an LR fix's value from an LR range test on the run's model and data.")] = True,
    follow_through: Annotated[bool, typer.Option("--follow-through/--no-follow-through",
                                                 help="After a kept change leaves the run healthy, try a step further while it helps.")] = True,
) -> None:
    """Re-run with the doctor's fixes; keep those that help.

    One change per round; each round re-runs the config with one change (same seed and data) and keeps it only if the
    validation metric improved by more than the noise. A healthy run is left alone.
    """
    from trainwise.autofix import fix as fix_chain

    chain = fix_chain(run_dir, rounds=rounds, budget_epochs=budget_epochs, out=out, metric=metric, noise=noise,
                      lr_test=lr_test, follow_through=follow_through, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(chain.to_text(), end="")
    print(f"chain: {Path(chain.out) / 'fix.json'}")


@app.command("config-reference")
@user_errors
def config_reference(out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = None) -> None:
    """Print the config reference, generated from the schema.

    Every key with its type, default and meaning (the source of docs/config.md).
    """
    from trainwise.docs_gen import config_reference_markdown

    text = config_reference_markdown()
    if out:
        out.write_text(text)
    else:
        print(text)


@app.command("scratch-example")
def scratch_example() -> None:
    """Walk through one step of a tiny NumPy network.

    One forward/backward/update step, number by number.
    """
    from trainwise.scratch.example import main as example_main

    raise typer.Exit(example_main())


@app.command("scratch-demo")
def scratch_demo(names: Annotated[Optional[list[str]], typer.Argument(help="symmetry | init | vanishing | clipping | all")] = None) -> None:
    """NumPy demos of initialization, gradients and clipping.

    Zero-init symmetry, activation variance per init, vanishing gradients, clipping.
    """
    from trainwise.scratch.demos import main as demos_main

    raise typer.Exit(demos_main(names or ["all"]))


@app.command()
@user_errors
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories trained on the same data config.")],
    split: Annotated[str, typer.Option(help="test | val")] = "test",
    weights: Annotated[str, typer.Option(help="final | best | last | ema")] = "final",
    as_json: Annotated[bool, typer.Option("--json", help="Print every metric as JSON instead of the summary.")] = False,
) -> None:
    """Score the average of several runs' probabilities.

    Prints the ensemble's metrics, its confusion matrix and each member's accuracy (--json: all of it as JSON).
    """
    from trainwise.tools.ensemble import evaluate_ensemble

    from trainwise.tools._shared import text_table
    from trainwise.tools.metrics_text import class_names_of, metrics_text

    metrics = evaluate_ensemble(run_dirs, split=split, weights=weights)
    if as_json:
        print(json.dumps({k: v for k, v in metrics.items() if not k.startswith("per_class")}, indent=2))
        return
    names = class_names_of(run_dirs[0], len(metrics.get("confusion") or []))
    print(metrics_text(metrics, names, f"ensemble of {len(run_dirs)}, {split} split, {weights} weights"))
    print("members\n" + text_table(["run", "acc"], [[m["run_dir"], m["acc"]] for m in metrics["members"]]))


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    input: Annotated[Path, typer.Argument(help="New data: .npz, .npy, .csv, IDX (*-ubyte[.gz]) or .pt file.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here: .json for JSON, else CSV (default: CSV to stdout).")] = None,
    weights: Annotated[str, typer.Option(help="final | best | last | ema")] = "final",
) -> None:
    """Predict classes and probabilities for new data.

    Inputs are raw (as the data source gives them); the run's normalization is applied.
    """
    from trainwise.tools.predict import predict_file

    text, note = predict_file(run_dir, input, out, weights)
    if out is None:
        sys.stdout.write(text)
        print(note, file=sys.stderr)
    else:
        from trainwise import atomic

        atomic.write_text(out, text)  # creates the folder; a kill leaves the old file or the new one
        print(f"wrote {out}: {note}")


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    format: Annotated[str, typer.Option("--format", "-f", help="torchscript | onnx")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File (default: RUN/exported/model.onnx or model.torchscript.pt).")] = None,
    weights: Annotated[str, typer.Option(help="final | best | last | ema")] = "final",
) -> None:
    """Export to TorchScript or ONNX and check the outputs.

    The exported model takes raw inputs (normalization included) and returns logits.
    """
    from trainwise.tools.export import export as export_run

    done = export_run(run_dir, format, out, weights=weights)
    print(f"wrote {done.describe()} ({done.format}); largest difference from PyTorch on check batches: "
          f"{done.max_abs_diff:.2g} ({done.checked_with})")


# ------------------------------------------------------------------------------------ tools


def _tool_config(config: Optional[Path], set_: Optional[list[str]]):
    from trainwise.config import load_config

    return load_config(config, set_ or [])


def _interrupted(err: TrainingInterrupted, how_to_continue: str) -> typer.Exit:
    """Ctrl-C or SIGTERM during a tool: say how to continue the tool, not the one run it was in."""
    import signal

    print(f"interrupted by {signal.Signals(err.signum).name}: {how_to_continue}", file=sys.stderr)
    return typer.Exit(code=err.exit_code)


def _default_tool_dir(kind: str, config: Optional[Path]) -> Path:
    """runs/<kind>-<config file stem>: the same command finds the same directory again."""
    return Path("runs") / f"{kind}-{config.stem if config else 'default'}"


@app.command("lr-find")
@user_errors
def lr_find(
    config: ConfigArg = None,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where lr_find.png/json go (default: runs/lr-find-<config>).")] = None,
    steps: Annotated[int, typer.Option(help="Sweep length in optimizer steps.")] = 200,
    start_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last learning rate (the sweep stops earlier if the loss explodes).")] = 10.0,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the sweep (default: train.seed).")] = None,
) -> None:
    """Sweep the learning rate and suggest one, with a plot.

    An exponential sweep over a few hundred steps; the suggestion follows the valley rule (the
    steepest slope is shown too). Model and optimizer are left as they were.
    """
    from trainwise.tools.lr_find import lr_find as sweep
    from trainwise.tools.lr_find import probe_config
    from trainwise.trainer import Trainer

    cfg = _tool_config(config, set_)
    result = sweep(Trainer(probe_config(cfg)), start_lr=start_lr, end_lr=end_lr, steps=steps, seed=seed)
    json_path, png_path = result.save(out or _default_tool_dir("lr-find", config))
    fmt = lambda lr: "none" if lr is None else f"{lr:.3g}"  # noqa: E731
    print(f"swept {len(result.lrs)} steps from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}: {result.stop_reason}")
    print(f"suggested lr: {fmt(result.suggestion)} (valley {fmt(result.valley)}, steepest {fmt(result.steepest)})")
    print(f"plot: {png_path} | numbers: {json_path}")


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories; the first is the baseline.")],
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="History key to show per epoch (repeatable; default: losses, accuracies, val_macro_f1).")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Also write the comparison as one HTML file.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the comparison as JSON.")] = None,
) -> None:
    """Compare runs: config, metrics and findings.

    The first run is the baseline. Metrics per epoch and at the end; doctor findings that appeared or
    disappeared, by code.
    """
    from trainwise import atomic
    from trainwise.tools.compare import compare_runs

    comparison = compare_runs(run_dirs, metrics=metric)
    print(comparison.to_text(), end="")
    if html:
        atomic.write_text(html, comparison.to_html())
        print(f"html: {html}")
    if json_out:
        atomic.write_json(json_out, comparison.to_dict())
        print(f"json: {json_out}")


@app.command()
@user_errors
def cv(
    config: ConfigArg = None,
    set_: SetOpt = None,
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of stratified folds.")] = 5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="CV directory (default: runs/cv-<config>).")] = None,
    max_std: Annotated[float, typer.Option(help="Warn when the accuracy std across folds exceeds this.")] = 0.05,
) -> None:
    """Stratified K-fold cross-validation with a fold ensemble.

    A run directory per fold, mean ± std of each metric, the doctor's findings per fold and in common.
    """
    from trainwise.tools.cross_validation import cross_validate

    out = out or _default_tool_dir("cv", config)
    try:
        result = cross_validate(_tool_config(config, set_), folds=folds, out=out, max_std=max_std)
    except TrainingInterrupted as err:
        raise _interrupted(err, "run the same command again to continue (finished folds are kept, the interrupted one resumes)") from None
    print(result.to_text(), end="")
    print(f"summary: {out / 'cv_summary.json'} | fold runs: {out}/fold-1 ... fold-{folds}")


@app.command()
@user_errors
def search(
    config: ConfigArg = None,
    space: Annotated[Path, typer.Option("--space", help="Search space TOML: [optim.lr] low/high/log, [data.batch_size] choices, ...")] = ...,
    trials: Annotated[int, typer.Option("--trials", "-n", help="Finished trials the study should hold (a re-run continues up to it).")] = 20,
    sampler: Annotated[str, typer.Option(help="grid | random | tpe")] = "tpe",
    pruner: Annotated[str, typer.Option(help="none | median | asha (stop trials early on the per-epoch metric)")] = "median",
    storage: Annotated[Optional[str], typer.Option(help="Default: SQLite in the search directory; 'journal': a journal file there; or postgresql://user:pass@host/db.")] = None,
    workers: Annotated[int, typer.Option(help="Processes on this machine sharing the study.")] = 1,
    metric: Annotated[str, typer.Option(help="History key to optimize (losses minimized, accuracy/F1 maximized).")] = "val_loss",
    study: Annotated[Optional[str], typer.Option(help="Study name (default: the search directory's name); the same name joins the same study.")] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Search directory (default: runs/search-<config>).")] = None,
) -> None:
    """Hyperparameter search on Optuna, one run per trial.

    Writes trials.csv, best_config.toml and plots; running the command again continues the study.
    """
    from trainwise.tools.search import load_space
    from trainwise.tools.search import search as run_search

    out = out or _default_tool_dir("search", config)
    try:
        result = run_search(_tool_config(config, set_), load_space(space), trials, out, sampler=sampler, pruner=pruner, storage=storage,
                            workers=workers, metric=metric, study_name=study, seed=seed)
    except TrainingInterrupted as err:
        raise _interrupted(err, f"the study keeps its finished trials; run the same command again to continue it ({out})") from None
    print(result.to_text(), end="")
    print(f"search directory: {out} (trials.csv, best_config.toml, optimization_history.png, param_importances.png)")


@app.command("batch-size")
@user_errors
def batch_size(
    config: ConfigArg = None,
    set_: SetOpt = None,
    max_batch: Annotated[Optional[int], typer.Option("--max", help="Largest batch to consider (default: the training-set size).")] = None,
    steps: Annotated[int, typer.Option(help="Training steps per candidate batch size.")] = 2,
) -> None:
    """Find the largest training batch that fits in GPU memory.

    Steps down on out-of-memory, doubles while batches fit, then bisects the boundary.
    """
    from trainwise.tools.batch_size import find_batch_size

    result = find_batch_size(_tool_config(config, set_), max_batch=max_batch, steps=steps)
    limit = " (the limit: every sample fits in one batch)" if result.reached_limit else ""
    print(f"largest batch that fits on {result.device}: {result.batch_size}{limit}")
    print(f"largest power of two that fits: {result.power_of_two} (suggested: --set data.batch_size={result.power_of_two})")


_finished_run = False  # set by train/resume once the run directory is complete on disk


def run() -> None:
    try:
        app(prog_name="trainwise")  # also under python -m trainwise, so that shell completion finds the command
    except SystemExit as done:
        if done.code in (0, None) and _finished_run:
            _exit_now()
        raise
    if _finished_run:
        _exit_now()


def _exit_now() -> None:
    """End a finished training process without the interpreter's tear-down.

    Tearing down a process that used a GPU (freeing the CUDA context and the cached allocations, then
    every module) took 1.8-1.9 s after an 8-epoch run on the H200 (docs/benchmarks.md). By the time this
    runs, every file of the run was written atomically and fsync'ed (trainwise.atomic), the loggers were
    closed at the end of the run, and what remains is output on stdout/stderr, flushed here.
    """
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

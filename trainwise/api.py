"""The Python API: ``fit``, ``resume`` and ``evaluate``, thin layers over the Trainer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from trainwise import checkpointing, distributed
from trainwise.config import Config, build_config, load_config
from trainwise.core import Callback
from trainwise.data import DataSplits, from_arrays
from trainwise.errors import RunFinished, UserError
from trainwise.rundir import FINDINGS, REPORT, SUMMARY, RunDir
from trainwise.runlock import RunLock
from trainwise.trainer import Run, Trainer


def default_run_dir(config: Config, claim: bool = True) -> Path:
    """``runs/<data>-<model>-<time>``. With ``claim`` the directory is created here, and a name another run
    took in the same second gets ``-2``, ``-3`` ...: two trainings started together (a sweep from two
    shells, parallel tests) never share one. The ranks of an outside launcher (torchrun) do not claim:
    they must agree on one name, which a claim per rank would split."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.data.name}-{config.model.name.split(':')[-1]}-{stamp}"
    if not claim:
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()  # atomic: exactly one process creates each name
            return path
        except FileExistsError:
            continue
    raise UserError(f"no free run directory next to {base}", expected="a writable runs/ directory", fix="pass --out")


def fit(
    config: Config | str | Path | dict | None = None,
    *,
    model: torch.nn.Module | None = None,
    train: Any = None,
    val: Any = None,
    test: Any = None,
    data: DataSplits | None = None,
    callbacks: Sequence[Callback] = (),
    out: str | Path | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> Run:
    """Train and return a :class:`Run` (``.history``, ``.summary``, ``.model``, ``.run_dir``).

    ``config`` is a Config, a TOML/YAML path, a dict of sections, or None (defaults). Keyword overrides
    use double underscores for dots: ``fit(optim__lr=0.01, train__epochs=5)``. Pass your own ``model``
    (any ``nn.Module``) and data per split (``train``/``val``/``test``) as a tuple ``(x, y)`` or
    ``(x, features, y)``, a torch ``Dataset`` or a ``DataLoader`` (docs/data.md), or all three as a ready
    ``DataSplits``. Tuples follow ``data.normalize`` (training-split statistics, recorded in
    preprocess.json) and ``data.classes`` as named datasets do, and labels the rule of trainwise.data.labels.
    Nothing is written to disk unless ``out`` names a run directory. A directory that already holds a
    run is refused unless ``overwrite=True``, which first removes that run's files. With
    ``optim.lr = "auto"`` an lr-find sweep runs first and its suggestion becomes ``optim.lr`` (see
    trainwise.tools.lr_find).
    """
    cfg = _as_config(config, {k.replace("__", "."): v for k, v in overrides.items()})
    if train is not None:
        data = from_arrays(train, val, test, normalize=cfg.data.normalize, classes=cfg.data.classes)
    if out is None or not distributed.is_main_process():
        return _fit(cfg, model, data, callbacks, out)
    with RunLock(out):  # held through the check, the clean-up and the training (the Trainer takes it again)
        claim_run_dir(RunDir(out), overwrite)
        return _fit(cfg, model, data, callbacks, out)


def _fit(cfg: Config, model, data, callbacks, out) -> Run:
    if cfg.optim.lr == "auto":  # lr-find on this config first; the run records the number it chose
        from trainwise.tools.lr_find import resolve_auto_lr

        cfg, data = resolve_auto_lr(cfg, model=model, data=data, out=out)
    if cfg.doctor.autofix:  # repairs on error-level findings instead of failing (trainwise.autofix.live)
        from trainwise.autofix.live import fit_with_repairs

        return fit_with_repairs(cfg, model=model, data=data, callbacks=callbacks, out=out)
    return Trainer(cfg, model=model, data=data, callbacks=list(callbacks), run_dir=out).fit()


def claim_run_dir(run: RunDir, overwrite: bool) -> None:
    """A new run may write into ``run``: refuse one that holds a run, unless ``overwrite`` (then clear it)."""
    if not run.is_run():
        return
    if not overwrite:
        what = "a finished run" if run.is_finished() else "an unfinished run"
        also = "" if run.is_finished() else f", or continue it with trainwise resume {run}"
        raise UserError(f"{run} already holds {what}", expected="a new or empty directory for a new run",
                        fix=f"pass --overwrite (overwrite=True) to replace it, or choose another --out{also}")
    run.clear()


def _as_config(config, overrides: dict[str, Any]) -> Config:
    if isinstance(config, Config):
        return config.replace(overrides) if overrides else config
    if isinstance(config, dict):
        from trainwise.config import merge_overrides

        return build_config(merge_overrides(config, overrides))
    return load_config(config, overrides)


def check_run_dir(run_dir: str | Path) -> Path:
    return RunDir(run_dir).check().path


def resume(run_dir: str | Path, *, model: torch.nn.Module | None = None, data: DataSplits | None = None,
           callbacks: Sequence[Callback] = (), config: Config | None = None, train: Any = None, val: Any = None,
           test: Any = None, epochs: int | None = None) -> Run:
    """Continue an interrupted run from ``checkpoints/last.pt`` (or ``previous.pt`` if the latest is corrupt).

    A run trained on data passed to ``fit`` needs the same data again (``train``/``val``/``test`` or ``data``).
    ``epochs`` extends a run to that many epochs in all (finished or not): the LR schedule is stretched,
    i.e. from the next step on the LR is what a run configured with ``epochs`` from the start would have
    there; the epochs already trained keep their LRs. A finished run without more epochs raises
    :class:`~trainwise.errors.RunFinished` and nothing is written.
    """
    run = RunDir(run_dir).check()
    # Before anything is read: a second writer must not delete this one's temporary files. Data-parallel:
    # rank 0 is the writer and holds it.
    with RunLock(run.path) if distributed.is_main_process() else contextlib.nullcontext():
        saved = run.load_config()
        if config is not None and config.to_dict() != saved.to_dict():
            raise UserError(f"{run} belongs to another config", expected="the config saved in the run directory",
                            fix="resume without a config, or start a new run with trainwise train")
        ckpt, path = checkpointing.resume_point(run.path, saved)
        saved = _extended(run.path, saved, ckpt, epochs)  # a finished run stops here, having written nothing
        records, rebuilt = resumed_history(run, ckpt, path)
        if train is not None:  # prepared as fit prepared it: the same normalization and classes
            data = from_arrays(train, val, test, normalize=saved.data.normalize, classes=saved.data.classes)
        trainer = Trainer(saved, model=model, data=data, callbacks=list(callbacks), run_dir=run.path)
        trainer.history.records = records
        trainer.load_checkpoint(ckpt)
        if rebuilt and trainer.history.path is not None:
            trainer.history.save(trainer.history.path)
        return trainer.fit()


def resumed_history(run: RunDir, ckpt: dict[str, Any], path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The History a resumed run continues: history.jsonl, or the checkpoint's copy when the file is damaged
    or shorter than the checkpoint (``history_len``). Returns (records, whether the file must be rewritten)."""
    wanted = ckpt["history_len"]
    try:
        records, problem = run.load_history().records, None
    except UserError as err:
        records, problem = None, str(err).split(". Fix:")[0]
    if records is not None and len(records) < wanted:
        problem = f"{run.history_file} holds {len(records)} records, the checkpoint was written after {wanted}"
    if problem is None:
        return records, False
    if "history" not in ckpt:  # a checkpoint written before checkpoints carried the History
        raise UserError(f"cannot resume {run}: {problem}", expected=f"{wanted} records in {run.history_file}",
                        fix="restore history.jsonl from a copy, or start the run again with trainwise train --overwrite")
    checkpointing.log.warning(f"warning: {problem}; rebuilt it from {path}")
    return list(ckpt["history"]), True


def _final_files_written(run_dir: Path, cfg: Config, epoch: int) -> bool:
    """The files a run writes after its last epoch are there, for that epoch (a kill between them: not finished).

    final.safetensors carries its epoch; findings.json and report.html follow it, in this order.
    """
    from safetensors import safe_open

    run = RunDir(run_dir)
    final, findings, report = run.weights_file("final"), run.file(FINDINGS), run.file(REPORT)
    needed = [run.file(SUMMARY), final, findings] + ([report] if cfg.train.report else [])
    if not all(p.is_file() for p in needed):
        return False
    try:
        with safe_open(str(final), framework="pt") as handle:
            written_at = (handle.metadata() or {}).get("epoch")
    except Exception:  # noqa: BLE001 - a damaged final file: finishing again rewrites it
        return False
    later = [p.stat().st_mtime_ns for p in needed[1:]]
    return written_at == str(epoch) and later == sorted(later)


def _extended(run_dir: Path, saved: Config, ckpt: dict[str, Any], epochs: int | None) -> Config:
    """The config to resume under: the saved one, or with more epochs; a finished run is refused here, before any write."""
    trained = ckpt["epoch"] if ckpt["epoch_done"] else ckpt["epoch"] - 1
    finished = (ckpt["stop"] or (ckpt["epoch_done"] and ckpt["epoch"] >= saved.train.epochs)) and _final_files_written(run_dir, saved, ckpt["epoch"])
    if epochs is None or epochs == saved.train.epochs:
        if finished:
            # A run that stopped itself (early stopping) cannot be extended (see below): say what can be done instead.
            longer = ("start a new run from its weights with finetune.init_from=RUN" if ckpt["stop"]
                      else f"trainwise resume {run_dir} --set train.epochs=N (N > {trained})")
            raise RunFinished(f"{run_dir} is finished ({trained} of {saved.train.epochs} epochs, {ckpt['stop_reason'] or 'completed'}); "
                              f"nothing was written. To train longer: {longer}")
        return saved
    if ckpt["stop"]:
        raise UserError(f"{run_dir} was stopped at epoch {ckpt['epoch']} ({ckpt['stop_reason']})", expected="a run that ran all its epochs",
                        received=f"train.epochs={epochs}", fix="start a new run (finetune.init_from=RUN starts from its weights)")
    if epochs <= trained:
        raise UserError(f"cannot extend {run_dir} to {epochs} epochs", expected=f"train.epochs greater than the {trained} epochs trained",
                        received=epochs, fix=f"--set train.epochs={trained + max(trained, 1)}, for example")
    return saved.replace({"train.epochs": epochs})


def evaluate(run_dir: str | Path, split: str = "test", weights: str = "final") -> dict[str, Any]:
    """Re-score a saved run on one split with its saved weights (final, best, last or ema)."""
    if split not in ("test", "val", "train"):
        raise UserError("bad split", expected="test, val or train", received=split)
    trainer = Trainer.from_run(run_dir, weights)
    cfg = trainer.config
    if split == "train":
        from trainwise.data.loader import make_loader

        loader = make_loader(trainer.data.train, cfg.data.eval_batch_size, trainer.device, shuffle=False)
        return trainer.evaluate(loader=loader)
    if split not in trainer.eval_loaders:
        raise UserError(f"the run has no {split} split", fix="use --split test or train")
    return trainer.evaluate(split)

"""The Python API: ``fit``, ``resume`` and ``evaluate``, thin layers over the Trainer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from trainwise import checkpointing
from trainwise.config import Config, build_config, load_config, read_config_file
from trainwise.core import Callback
from trainwise.data import DataSplits, from_arrays
from trainwise.errors import RunFinished, UserError
from trainwise.history import History
from trainwise.trainer import Run, Trainer


def default_run_dir(config: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.data.name}-{config.model.name.split(':')[-1]}-{stamp}"


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
    **overrides: Any,
) -> Run:
    """Train and return a :class:`Run` (``.history``, ``.summary``, ``.model``, ``.run_dir``).

    ``config`` is a Config, a TOML/YAML path, a dict of sections, or None (defaults). Keyword overrides
    use double underscores for dots: ``fit(optim__lr=0.01, train__epochs=5)``. Pass your own ``model``
    (any ``nn.Module``) and data per split (``train``/``val``/``test``) as a tuple ``(x, y)`` or
    ``(x, features, y)``, a torch ``Dataset`` or a ``DataLoader`` (docs/data.md), or all three as a ready
    ``DataSplits``. Tuples follow ``data.normalize`` (training-split statistics, recorded in
    preprocess.json) and ``data.classes`` as named datasets do, and labels the rule of trainwise.data.labels.
    Nothing is written to disk unless ``out`` names a run directory. With ``optim.lr = "auto"`` an
    lr-find sweep runs first and its suggestion becomes ``optim.lr`` (see trainwise.tools.lr_find).
    """
    cfg = _as_config(config, {k.replace("__", "."): v for k, v in overrides.items()})
    if train is not None:
        data = from_arrays(train, val, test, normalize=cfg.data.normalize, classes=cfg.data.classes)
    if cfg.optim.lr == "auto":  # lr-find on this config first; the run records the number it chose
        from trainwise.tools.lr_find import resolve_auto_lr

        cfg, data = resolve_auto_lr(cfg, model=model, data=data, out=out)
    if cfg.doctor.autofix:  # repairs on error-level findings instead of failing (trainwise.autofix.live)
        from trainwise.autofix.live import fit_with_repairs

        return fit_with_repairs(cfg, model=model, data=data, callbacks=callbacks, out=out)
    trainer = Trainer(cfg, model=model, data=data, callbacks=list(callbacks), run_dir=out)
    return trainer.fit()


def _as_config(config, overrides: dict[str, Any]) -> Config:
    if isinstance(config, Config):
        return config.replace(overrides) if overrides else config
    if isinstance(config, dict):
        from trainwise.config import merge_overrides

        return build_config(merge_overrides(config, overrides))
    return load_config(config, overrides)


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} does not exist", fix="pass the directory that trainwise train wrote (see --out)")
    if not (run_dir / "config.toml").is_file():
        raise UserError(f"{run_dir} is not a trainwise run directory", expected="config.toml in it", fix="pass a directory written by trainwise train")
    return run_dir


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
    run_dir = check_run_dir(run_dir)
    saved = build_config(read_config_file(run_dir / "config.toml"), source=str(run_dir / "config.toml"))
    if config is not None and config.to_dict() != saved.to_dict():
        raise UserError(f"{run_dir} belongs to another config", expected="the config saved in the run directory",
                        fix="resume without a config, or start a new run with trainwise train")
    ckpt, _ = checkpointing.resume_point(run_dir, saved)
    records = History.load(run_dir / "history.jsonl").records if (run_dir / "history.jsonl").exists() else None  # read (and checked) only
    saved = _extended(run_dir, saved, ckpt, epochs)
    if train is not None:  # prepared as fit prepared it: the same normalization and classes
        data = from_arrays(train, val, test, normalize=saved.data.normalize, classes=saved.data.classes)
    trainer = Trainer(saved, model=model, data=data, callbacks=list(callbacks), run_dir=run_dir)
    if records is not None:
        trainer.history.records = records
    trainer.load_checkpoint(ckpt)
    return trainer.fit()


def _final_files_written(run_dir: Path, cfg: Config, epoch: int) -> bool:
    """The files a run writes after its last epoch are there, for that epoch (a kill between them: not finished).

    final.safetensors carries its epoch; findings.json and report.html follow it, in this order.
    """
    from safetensors import safe_open

    final, findings, report = run_dir / "checkpoints" / "final.safetensors", run_dir / "findings.json", run_dir / "report.html"
    needed = [run_dir / "summary.json", final, findings] + ([report] if cfg.train.report else [])
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
            raise RunFinished(f"{run_dir} is finished ({trained} of {saved.train.epochs} epochs, {ckpt['stop_reason'] or 'completed'}); "
                              f"nothing was written. To train longer: trainwise resume {run_dir} --set train.epochs=N (N > {trained})")
        return saved
    if ckpt["stop"]:
        raise UserError(f"{run_dir} was stopped at epoch {ckpt['epoch']} ({ckpt['stop_reason']})", expected="a run that ran all its epochs",
                        received=f"train.epochs={epochs}", fix="start a new run (finetune.init_from=RUN starts from its weights)")
    if epochs <= trained:
        raise UserError(f"cannot extend {run_dir} to {epochs} epochs", expected=f"train.epochs greater than the {trained} epochs trained",
                        received=epochs, fix=f"--set train.epochs={trained + max(trained, 1)}, for example")
    return saved.replace({"train.epochs": epochs})


def evaluate(run_dir: str | Path, split: str = "test", weights: str = "final") -> dict[str, Any]:
    """Re-score a saved run on one split with its saved weights (final, best or last)."""
    run_dir = check_run_dir(run_dir)
    if split not in ("test", "val", "train"):
        raise UserError("bad split", expected="test, val or train", received=split)
    cfg = build_config(read_config_file(run_dir / "config.toml"))
    cfg = cfg.replace({"train.progress": "none"})
    path = run_dir / "checkpoints" / (f"{weights}.pt" if weights == "last" else f"{weights}.safetensors")
    if not path.exists():
        raise UserError(f"no {weights} weights in {run_dir}", expected=str(path), fix="use --weights final|best|last")
    trainer = Trainer(cfg)
    trainer.model.load_state_dict(checkpointing.load_weights(path))
    if split == "train":
        from trainwise.data.loader import make_loader

        loader = make_loader(trainer.data.train, cfg.data.eval_batch_size, trainer.device, shuffle=False)
        return trainer.evaluate(loader=loader)
    if split not in trainer.eval_loaders:
        raise UserError(f"the run has no {split} split", fix="use --split test or train")
    return trainer.evaluate(split)

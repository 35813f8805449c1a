"""Stratified K-fold cross-validation: one run directory per fold, mean ± std, the folds as an ensemble.

The folds are cut from the dataset's training and validation data together (scikit-learn's
StratifiedKFold, shuffled with ``data.split_seed``); the test split stays the one a single run with
the same config would use, so fold runs, their ensemble and a single run are scored on the same samples.
Each fold is normalized with its own training statistics (nothing of its validation part leaks in).
Every fold trains with the same config and seed, so the spread across folds is the spread due to
which samples land in validation.

    CV_DIR/
      fold-1/ ... fold-K/   ordinary run directories (trainwise compare / evaluate / resume work on them)
      cv_summary.json       per-fold and mean ± std metrics, warnings, doctor findings, ensemble scores

Standard deviations are sample standard deviations (ddof = 1) over the folds. Running the same
cross-validation again reads finished folds back and resumes an interrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwise import atomic
from trainwise.config import Config
from trainwise.data import DataSplits, TensorData, _standardize, prepare_data
from trainwise.errors import UserError
from trainwise.losses import probabilities
from trainwise.rundir import SUMMARY, WEIGHT_FILES, RunDir
from trainwise.saved_model import Preprocessed, describe_inputs, load_saved
from trainwise.tools.ensemble import average_probabilities
from trainwise.techniques.tta import averaged_logits
from trainwise.trainer import Run
from trainwise.tools._shared import Diagnose, codes, final_metrics, findings_of, fmt, load_diagnose, text_table

SPREAD_METRICS = ("val_acc", "test_acc")  # the accuracy spread the warning looks at (std above max_std)
SHOWN = ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "test_loss", "test_acc", "test_macro_f1")


# ----------------------------------------------------------------------------------------- folds

def make_folds(cfg: Config, folds: int) -> list[DataSplits]:
    """K DataSplits: train/val from a stratified K-fold split of train+val, the same test split in all."""
    return _split(cfg, folds)[1]


def _split(cfg: Config, folds: int) -> tuple[DataSplits, list[DataSplits]]:
    """The unnormalized pool (train+val, and test) and the K normalized folds cut from it."""
    if folds < 2:
        raise UserError("too few folds", expected="--folds 2 or more", received=folds)
    pool = prepare_data(cfg.data.model_copy(update={"val_fraction": 0.0, "normalize": False}))
    if not isinstance(pool.train, TensorData):
        raise UserError(f"cross-validation needs data held in memory; data.name = {cfg.data.name!r} reads it from disk while training",
                        expected="a source loaded whole (digits, fashion_mnist, arrays, csv, npy that fits the device ...)",
                        fix="train once with a validation split (data.val_fraction), or convert the data to an NPZ file")
    from sklearn.model_selection import StratifiedKFold

    y = pool.train.targets.numpy()
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    if smallest < folds:
        raise UserError(f"a class has only {smallest} training samples, too few for {folds} stratified folds",
                        expected=f"at least {folds} samples of every class", fix=f"use --folds {max(smallest, 2)} or more data")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.data.split_seed)
    out = []
    for train_idx, val_idx in splitter.split(np.zeros(len(y)), y):
        train, val = pool.train.subset(torch.from_numpy(train_idx)), pool.train.subset(torch.from_numpy(val_idx))
        test, norm = pool.test, {}
        if cfg.data.normalize:
            train, val, test, norm = _normalize_fold(train, val, test, image=len(pool.input_shape) == 3)
        out.append(dataclasses.replace(pool, train=train, val=val, test=test, normalization=norm))
    return pool, out


def _normalize_fold(train: TensorData, val: TensorData, test: TensorData | None, image: bool):
    """Standardize each input tensor with the fold's training statistics (as prepare_data does for a run)."""
    inputs: list[list[torch.Tensor | None]] = [[], [], []]
    norm = {}
    for i, name in enumerate(("input", "features")[: len(train.inputs)]):
        parts = [d.inputs[i].numpy() if d is not None else None for d in (train, val, test)]
        *scaled, norm[name] = _standardize(*parts, per_feature=not image or i == 1)
        for k, a in enumerate(scaled):
            inputs[k].append(None if a is None else torch.from_numpy(a))
    pack = lambda d, xs: None if d is None else TensorData(tuple(xs), d.targets)  # noqa: E731
    return pack(train, inputs[0]), pack(val, inputs[1]), pack(test, inputs[2]), norm


# -------------------------------------------------------------------------------------- ensemble

class FoldEnsemble(nn.Module):
    """The fold models as one model of *raw* inputs: each member (a ``trainwise.saved_model.Preprocessed``)
    standardizes them with its own fold's training statistics; the ensemble averages their probabilities.

    ``forward`` returns log-probabilities (multiclass) or the logit of the mean probability (binary), so
    argmax / ``> 0`` predictions and trainwise's losses work on its output as on any model's logits.
    """

    def __init__(self, members: list[nn.Module], task: str):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        probs = [probabilities(m(*inputs).float(), self.task) for m in self.members]
        return averaged_logits(average_probabilities(probs), self.task)


def load_cv_ensemble(cv_dir: str | Path, weights: str = "final") -> FoldEnsemble:
    """Rebuild the fold models of a cross-validation directory as one :class:`FoldEnsemble` (eval mode, CPU).

    It takes raw inputs (as the dataset gives them, before normalization) and returns logits.
    """
    cv_dir = Path(cv_dir)
    summary_path = cv_dir / "cv_summary.json"
    if not summary_path.is_file():
        raise UserError(f"{cv_dir} is not a cross-validation directory", expected="cv_summary.json in it", fix="pass the --out of trainwise cv")
    summary = json.loads(summary_path.read_text())
    return FoldEnsemble([load_saved(cv_dir / d, weights).model for d in summary["fold_dirs"]], summary["task"]).eval()


def train_fold(config: Config, data: DataSplits, run_dir: Path | None) -> Run:
    """Train one fold, or take it up where an earlier cross-validation left it.

    A fold directory with this config is read back when it finished (summary.json and final weights)
    and resumed from its checkpoint when it was interrupted; one with another config is trained again.
    """
    from trainwise.api import fit, resume

    run = RunDir(run_dir) if run_dir is not None else None
    if run is None or not run.is_run():
        return fit(config, data=data, out=run_dir)
    saved = run.load_config()
    if not _same_config(saved, config):
        return fit(config, data=data, out=run_dir, overwrite=True)
    if run.is_finished() and run.weights_file("final").is_file():
        return Run(config=saved, model=load_saved(run_dir).model.model, history=run.load_history(),
                   summary=run.read_json(SUMMARY), run_dir=run_dir, data=data)
    if run.last_checkpoint.is_file():
        return resume(run_dir, data=data)
    return fit(config, data=data, out=run_dir, overwrite=True)


def _same_config(saved: Config, config: Config) -> bool:
    """Whether a fold directory was trained with ``config`` (progress output aside; lr = "auto" matches
    the number it became)."""
    a, b = (c.replace({"train.progress": "none"}).to_dict() for c in (saved, config))
    if config.optim.lr == "auto":
        a["optim"].pop("lr"), b["optim"].pop("lr")
    return a == b


# ------------------------------------------------------------------------------------------- run

@dataclass
class CVResult:
    summary: dict[str, Any]
    runs: list[Any] = field(repr=False)  # trainwise.Run per fold
    ensemble: FoldEnsemble | None = field(default=None, repr=False)

    def to_text(self) -> str:
        s = self.summary
        k = s["folds"]
        rows = [[m, f"{v['mean']:.4f} ± {v['std']:.4f}", *v["values"]] for m, v in s["metrics"].items() if m in SHOWN]
        parts = [f"{k}-fold cross-validation ({s['fold_sizes'][0]['train']}/{s['fold_sizes'][0]['val']} train/val samples per fold, "
                 f"{s['test_size']} test samples)",
                 text_table(["metric", "mean ± std", *(f"fold {i + 1}" for i in range(k))], rows)]
        parts += [f"warning: {w}" for w in s["warnings"]]
        ens = s.get("ensemble", {}).get("test")
        if ens:
            single = s["metrics"].get("test_acc", {}).get("mean")
            parts.append(f"ensemble of the {k} fold models on test: acc {fmt(ens['acc'])}, loss {fmt(ens['loss'])}"
                         + (f" (single fold mean acc {fmt(single)})" if single is not None else ""))
        parts.append(_doctor_text(s["doctor"], k))
        return "\n".join(parts) + "\n"


def cross_validate(config: Config, folds: int = 5, out: str | Path | None = None, *, max_std: float = 0.05,
                   diagnose: Diagnose | None | str = "auto") -> CVResult:
    """Train one run per fold; return mean ± std of each metric, warnings, findings and the fold ensemble."""
    from trainwise.trainer import Trainer

    out = Path(out) if out is not None else None
    pool, splits = _split(config, folds)
    runs = []
    for k, data in enumerate(splits, start=1):
        print(f"fold {k}/{folds}", file=sys.stderr, flush=True)
        runs.append(train_fold(config.replace({"train.progress": "none"}), data, out / f"fold-{k}" if out else None))
    per_fold = [final_metrics({"history": r.history.records, "summary": r.summary}) for r in runs]
    common_keys = [m for m in per_fold[0] if all(m in f for f in per_fold)]
    metrics = {m: _stats([f[m] for f in per_fold]) for m in common_keys}
    val_size = min(len(s.val) for s in splits)
    warnings = [f"high spread across folds: {m} std {metrics[m]['std']:.3f} > {max_std:g} (values {', '.join(fmt(v, 3) for v in metrics[m]['values'])}); "
                f"the score depends on which samples land in validation ({val_size} per fold): report mean ± std, "
                "and trust differences between configs only beyond it; more data or repeated CV narrows it"
                for m in SPREAD_METRICS if m in metrics and metrics[m]["std"] > max_std]

    members = [Preprocessed(r.model, describe_inputs(d, config.data)) for r, d in zip(runs, splits)]
    ensemble = FoldEnsemble(members, pool.task).eval()
    summary: dict[str, Any] = {
        "folds": folds, "split_seed": config.data.split_seed, "stratified": True, "std": "sample (ddof=1)",
        "task": splits[0].task, "num_classes": splits[0].num_classes, "input_shape": list(splits[0].input_shape),
        "feature_dim": splits[0].feature_dim,
        "fold_dirs": [f"fold-{k}" for k in range(1, folds + 1)],
        "fold_sizes": [{"train": len(s.train), "val": len(s.val)} for s in splits],
        "test_size": len(splits[0].test) if splits[0].test is not None else 0,
        "metrics": metrics, "per_fold": per_fold, "warnings": warnings,
    }
    if pool.test is not None:  # the ensemble takes raw inputs: score it on the unnormalized test split
        probe = Trainer(config.replace({"train.progress": "none", "optim.lr": 1e-3}), model=ensemble, data=pool)
        test = probe.evaluate("test")
        summary["ensemble"] = {"members": [f"fold-{k}/{WEIGHT_FILES['final']}" for k in range(1, folds + 1)],
                               "rule": "mean of the fold models' probabilities",
                               "test": {k: v for k, v in test.items() if not isinstance(v, list)}}
    if out is not None:
        summary["doctor"] = fold_findings([out / f"fold-{k}" for k in range(1, folds + 1)], diagnose)
        atomic.write_json(out / "cv_summary.json", summary)
    else:
        summary["doctor"] = {"available": False, "reason": "no run directories (no --out)"}
    return CVResult(summary=summary, runs=runs, ensemble=ensemble)


def fold_findings(fold_dirs: list[Path], diagnose: Diagnose | None | str = "auto") -> dict[str, Any]:
    """Each fold's findings, the codes found in every fold, and those found in some folds only."""
    diagnose = load_diagnose() if diagnose == "auto" else diagnose
    found = [findings_of(d, diagnose) for d in fold_dirs]
    if any(f is None for f, _ in found):
        return {"available": False, "reason": next(why for f, why in found if f is None)}
    per_fold = [f for f, _ in found]
    by_fold = [codes(f) for f in per_fold]
    all_codes = sorted(set().union(*by_fold))
    common = [c for c in all_codes if all(c in b for b in by_fold)]
    return {
        "available": True, "per_fold": per_fold, "common": common,
        "some_folds": {c: [i + 1 for i, b in enumerate(by_fold) if c in b] for c in all_codes if c not in common},
    }


def _stats(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else math.nan, "min": float(a.min()),
            "max": float(a.max()), "values": [float(v) for v in a]}


def _doctor_text(doctor: dict[str, Any], folds: int) -> str:
    if not doctor.get("available"):
        return f"doctor: {doctor.get('reason', 'doctor not available')}"
    lines = [f"doctor, in all {folds} folds: {', '.join(doctor['common']) or 'nothing'}"]
    for code, where in doctor["some_folds"].items():
        lines.append(f"doctor, in fold{'s' if len(where) > 1 else ''} {', '.join(map(str, where))} only: {code}")
    return "\n".join(lines)

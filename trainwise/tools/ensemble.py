"""Ensembles at evaluation: average the class probabilities of several runs on the same split.

The runs must share the data config (same dataset, split and normalization), so that sample i of the
split is the same image for every member. Each member predicts as its own config says (test pipeline,
flip TTA); their probabilities are averaged and scored like a single model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainwise.data import prepare_data
from trainwise.errors import UserError
from trainwise.losses import predictions, probabilities, task_loss
from trainwise.metrics import MetricAccumulator
from trainwise.rundir import RunDir
from trainwise.techniques.tta import averaged_logits


def average_probabilities(probs: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(probs).mean(0)


def member_probabilities(run_dir: Path, split: str, weights: str, data) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(probabilities (N, K), targets (N,), trainer) of one run on ``split``."""
    from trainwise.trainer import Trainer

    trainer = Trainer.from_run(run_dir, weights, data=data)
    if split not in trainer.eval_loaders:
        raise UserError(f"the runs have no {split} split", fix="use split test or val")
    trainer.model.eval()
    probs, targets = [], []
    with torch.no_grad():
        for inputs, y in trainer.eval_loaders[split].batches():
            probs.append(probabilities(trainer.eval_logits(inputs), trainer.task))
            targets.append(y)
    return torch.cat(probs), torch.cat(targets), trainer


def evaluate_ensemble(run_dirs: list[str | Path], split: str = "test", weights: str = "final") -> dict[str, Any]:
    """Metrics of the averaged probabilities of ``run_dirs`` on ``split``, plus each member's accuracy."""
    if not run_dirs:
        raise UserError("an ensemble needs run directories", expected="one or more", received=0)
    run_dirs = [RunDir(r).check().path for r in run_dirs]
    data_cfgs = [RunDir(r).load_config().data for r in run_dirs]
    if any(d != data_cfgs[0] for d in data_cfgs[1:]):
        raise UserError("the runs were trained on different data configs", expected="the same [data] section in every run",
                        fix="ensemble runs of one dataset and split")
    data = prepare_data(data_cfgs[0])
    probs, members = [], []
    for run_dir in run_dirs:
        p, targets, trainer = member_probabilities(run_dir, split, weights, data)
        probs.append(p)
        members.append({"run_dir": str(run_dir), "acc": (p.argmax(1) == targets).double().mean().item()})
    mean = average_probabilities(probs)
    logits = averaged_logits(mean, trainer.task)
    acc = MetricAccumulator(trainer.num_classes, trainer.device)
    acc.update(task_loss(logits, targets, trainer.task), predictions(logits, trainer.task), targets)
    return acc.compute(trainer.task) | {"members": members}

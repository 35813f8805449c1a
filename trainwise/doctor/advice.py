"""Fixes that act, and the same changes in words and numbers.

``complete(ctx, finding)`` is the last step of every rule's finding:

* it drops a ``--set`` fix that would not change the run: a value the resolved config already has
  (``data.normalize=true`` when it is on), a key the run does not read (``model.hidden`` for a CNN,
  ResNet, fusion or user model; ``schedule.warmup_epochs`` under OneCycle or plateau), a model key for
  a model passed in by the user;
* it writes ``advice``: what the rule said in words, then each remaining fix in words, with the current
  value beside the new one;
* for a run without a trainwise config (another tool's log) it keeps only the words, since no key of
  ours acts on that run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trainwise.doctor.context import CHANNEL_MODELS, HIDDEN_MODELS, Context
from trainwise.doctor.finding import Finding

# key -> what it is, in a practitioner's words (values are appended: "to 3e-4 (now 3e-3)")
WORDS = {
    "optim.lr": "learning rate",
    "schedule.max_lr": "OneCycle peak learning rate",
    "optim.weight_decay": "weight decay",
    "model.dropout": "dropout",
    "model.drop_path": "drop-path rate",
    "train.grad_clip_norm": "gradient-norm clipping",
    "schedule.warmup_epochs": "learning-rate warm-up (epochs)",
    "train.epochs": "number of epochs",
    "regularization.label_smoothing": "label smoothing",
    "regularization.l1": "L1 penalty",
    "regularization.l2": "L2 penalty",
    "mixup.mixup_alpha": "MixUp alpha",
    "mixup.cutmix_alpha": "CutMix alpha",
    "finetune.layer_decay": "layer-wise LR decay of the pretrained layers",
    "train.precision": "numeric precision",
    "model.activation": "activation",
    "optim.name": "optimizer",
}
PHRASES = {
    "early_stopping.enabled=true": "stop early on the validation loss and keep the best epoch's weights",
    "data.normalize=true": "standardize the inputs (zero mean, unit variance from the training split)",
    "model.batch_norm=true": "add batch normalization after each hidden layer",
    "init.scheme=he_normal": "re-initialise the weights (He normal, biases zero), replacing the model's own init",
    "init.scheme=xavier_normal": "re-initialise the weights (Glorot normal, biases zero), replacing the model's own init",
    "schedule.name=cosine": "decay the learning rate (cosine schedule)",
    "schedule.name=plateau": "reduce the learning rate when validation stops improving",
    "schedule.name=onecycle": "a one-cycle schedule (warm-up to a higher peak, then decay)",
}


def parse_override(fix: str) -> tuple[str, Any]:
    from trainwise.config import parse_override as parse  # pydantic only when a fix is read

    return parse(fix)


KEEP_AUGMENTATION = "keep training augmentation in the final phase"


def _acts(ctx: Context, key: str, value: Any) -> bool:
    """Whether ``--set key=value`` changes this run (with its config known)."""
    if not ctx.config_known:
        return True  # stated in words only; see complete()
    if key.startswith("model.") and ctx.user_model:
        return False
    name = ctx.cfg("model.name", "mlp")
    if key == "model.hidden" and name not in HIDDEN_MODELS:
        return False
    if key == "model.channels" and name not in CHANNEL_MODELS:
        return False
    if key == "schedule.warmup_epochs" and not ctx.warmup_acts:
        return False
    if key == "schedule.max_lr" and ctx.schedule != "onecycle":
        return False
    current = ctx.cfg(key)
    return current is None or not _same(current, value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)), 1.0)
    return a == b


def _now(ctx: Context, key: str) -> Any:
    if key in ("optim.lr", "schedule.max_lr"):
        return ctx.base_lr
    return ctx.cfg(key) if ctx.config_known else None


def words(ctx: Context, fix: str) -> str:
    """One fix as a sentence fragment with numbers: "learning rate 3e-4 (now 3e-3)"."""
    if fix in PHRASES:
        return PHRASES[fix]
    key, value = parse_override(fix)
    if key == "progressive.phases":
        return KEEP_AUGMENTATION
    if key in ("model.hidden", "model.channels"):
        if ctx.config_known:
            return f"a wider model ({key.split('.')[1]} {value}, now {ctx.cfg(key)})"
        return "a larger model (about twice the units or channels per layer)"
    what = WORDS.get(key, key)
    now = _now(ctx, key)
    shown = _fmt(value)
    return f"{what} {shown} (now {_fmt(now)})" if now is not None and not isinstance(now, (dict, list)) else f"{what} {shown}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        from trainwise.doctor.fixes import fmt

        return fmt(v)
    return str(v)


def complete(ctx: Context, finding: Finding) -> Finding:
    kept = []
    for fix in finding.fixes:
        key, value = parse_override(fix)
        if _acts(ctx, key, value):
            kept.append(fix)
    advice = list(dict.fromkeys([*finding.advice, *(words(ctx, f) for f in kept)]))
    if ctx.assumptions:
        evidence = dict(finding.evidence)
        evidence.setdefault("assumptions", "; ".join(ctx.assumptions))
        finding = dataclasses.replace(finding, evidence=evidence)
    return dataclasses.replace(finding, fixes=kept if ctx.config_known and not ctx.foreign else [], advice=advice)

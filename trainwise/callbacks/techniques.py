"""Which technique callbacks and model set-up a config asks for (the Trainer calls these).

| config | callback / effect | event |
|---|---|---|
| ``augment.train`` | Augmentation | BATCH_START |
| ``mixup.mixup_alpha`` / ``cutmix_alpha`` > 0 | MixUp | BATCH_START |
| ``progressive.phases`` | ProgressiveResize | EPOCH_START, BATCH_START |
| ``regularization.l1`` / ``l2`` > 0 | WeightPenalty | AFTER_LOSS |
| ``ema.enabled`` | EMA | STEP_END, EVAL_END, FIT_END |
| ``finetune.init_from`` / ``freeze`` | Finetune | FIT_START, EPOCH_START |
| ``init.scheme`` | ``apply_init`` after the model is built | |
| ``finetune.head_lr_mult`` / ``layer_decay`` / ``lr_mult`` | ``lr_multipliers`` for the param groups | |
| ``augment.test``, ``evaluation.tta_flip`` | ``eval_transforms``, ``Trainer.eval_logits`` | evaluation |
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainwise.callbacks.augmentation import Augmentation
from trainwise.callbacks.ema import EMA
from trainwise.callbacks.finetune import Finetune
from trainwise.callbacks.mixup import MixUp
from trainwise.callbacks.penalty import WeightPenalty
from trainwise.callbacks.progressive_resize import ProgressiveResize
from trainwise.config import Config
from trainwise.core import Callback
from trainwise.techniques.augment import Pipeline
from trainwise.techniques.finetune import lr_multipliers as finetune_multipliers
from trainwise.techniques.init import init_weights


def technique_callbacks(cfg: Config) -> list[Callback]:
    cbs: list[Callback] = []
    if cfg.augment.train:
        cbs.append(Augmentation(cfg.augment.train))
    if cfg.mixup.mixup_alpha > 0 or cfg.mixup.cutmix_alpha > 0:
        cbs.append(MixUp(cfg.mixup))
    if cfg.progressive.phases:
        cbs.append(ProgressiveResize(cfg.progressive))
    if cfg.regularization.l1 > 0 or cfg.regularization.l2 > 0:
        cbs.append(WeightPenalty(cfg.regularization.l1, cfg.regularization.l2))
    if cfg.ema.enabled:
        cbs.append(EMA(cfg.ema))
    if cfg.finetune.init_from or cfg.finetune.freeze:
        cbs.append(Finetune(cfg.finetune))
    return cbs


def apply_init(model: torch.nn.Module, cfg: Config) -> None:
    """``init.scheme`` on any model (config-built or the user's); ``default`` leaves it as built."""
    if cfg.init.scheme != "default":
        nonlinearity = cfg.model.activation if cfg.init.nonlinearity == "auto" else cfg.init.nonlinearity
        init_weights(model, cfg.init.scheme, nonlinearity, cfg.init.mode)


def lr_multipliers(model: torch.nn.Module, cfg: Config) -> dict[str, float] | None:
    ft = cfg.finetune
    if ft.head_lr_mult == 1.0 and ft.layer_decay == 1.0 and not ft.lr_mult:
        return None
    return finetune_multipliers(model, ft.head or None, ft.head_lr_mult, ft.layer_decay, ft.lr_mult)


def eval_transforms(cfg: Config) -> list[Callable]:
    """Input transforms for evaluation: the test augmentation pipeline, with a fixed seed per call."""
    if not cfg.augment.test:
        return []
    pipeline = Pipeline(cfg.augment.test, where="augment.test")

    def test_pipeline(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        # The same corruption draws for each batch position in every evaluation, without touching the training RNG.
        generator = torch.Generator(inputs[0].device).manual_seed(cfg.augment.test_seed)
        return (pipeline(inputs[0], generator), *inputs[1:])

    return [test_pipeline]

"""Concrete ``--set`` overrides computed from the run's own config, so a fix is a value, not advice.

Every string returned here parses with ``trainwise.config.parse_override`` and validates against
``Config`` (a test applies every fix the doctor gives on its test runs), and changes something that
acts on the run: the LR goes to the key that sets its peak (``schedule.max_lr`` under OneCycle), never
the wrong way and into the optimizer's usual range; no warm-up for a schedule that ignores it; no width
for a model that the key does not build; nothing already set. A helper returns None where no key acts.
"""

from __future__ import annotations

import math

from trainwise.doctor import signals
from trainwise.doctor.context import CHANNEL_MODELS, HIDDEN_MODELS, Context

# Decoupled decay (AdamW) is applied as lr * wd per step, so its useful values are ~100x those of L2 decay.
TYPICAL_WEIGHT_DECAY = {"adamw": 0.05}
DEFAULT_L2_DECAY = 5e-4


def fmt(x: float) -> str:
    """3e-4, 0.05, 1.0: short, TOML-readable, and what a person would type."""
    if x == 0:
        return "0.0"
    if abs(x) < 1e-2 or abs(x) >= 1e4:
        mantissa, exp = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exp)}"
    text = f"{x:.3g}"
    return text if "." in text or "e" in text else text + ".0"


def nice(x: float) -> float:
    """Round to 1, 2, 3 or 5 times a power of ten (the values people try)."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x))
    base = x / 10**exp
    step = min((1, 2, 3, 5, 10), key=lambda s: abs(math.log(base / s)))
    return float(step * 10**exp)


def lr(ctx: Context, factor: float, fallback: float) -> str | None:
    """The run's peak LR times ``factor``, on the key that sets it; ``fallback`` when the LR is unknown.

    An LR outside the optimizer's usual range moves at least to the usual starting point (AdamW at 5
    needs 1e-3, not 1.5), and never further out: a larger LR for one already above the range, or a
    smaller one below it, is no fix (None).
    """
    base, key = ctx.base_lr, ctx.lr_key
    if not base:
        return f"{key}={fmt(fallback)}"
    target, typical, position = base * factor, ctx.typical_lr(), ctx.lr_position()
    if (factor > 1 and position == "high") or (factor < 1 and position == "low"):
        return None
    if typical is not None:
        if factor < 1 and position == "high":
            target = min(target, typical)
        elif factor > 1 and position == "low":
            target = max(target, typical)
    rng = ctx.lr_range()
    if rng is not None and position is None:
        # From inside the usual range a fix stays inside it: SGD at 0.05 that diverges needs 5e-3, not an
        # LR below the range where it would stall instead; a run already at the edge gets no further move.
        low, high = rng
        if (factor < 1 and base <= low) or (factor > 1 and base >= high):
            return None
        target = min(max(target, low), high)
    target = nice(target)
    if (factor < 1 and target >= base) or (factor > 1 and target <= base):
        return None  # rounding undid the move
    return f"{key}={fmt(target)}"


def lower_lr(ctx: Context, factor: float = 0.1) -> str | None:
    return lr(ctx, factor, 3e-4)


def higher_lr(ctx: Context, factor: float = 10.0) -> str | None:
    return lr(ctx, factor, 3e-3)


def warmup(ctx: Context, epochs: float = 1.0) -> str | None:
    """A linear warm-up, where the schedule honours it and none is set yet."""
    if not ctx.warmup_acts or float(ctx.cfg("schedule.warmup_epochs", 0.0) or 0.0) >= epochs:
        return None
    return f"schedule.warmup_epochs={fmt(epochs)}"


def more_weight_decay(ctx: Context) -> str:
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    typical = TYPICAL_WEIGHT_DECAY.get(ctx.optimizer or "", DEFAULT_L2_DECAY)
    return f"optim.weight_decay={fmt(nice(wd * 5) if wd > 0 else typical)}"


def less_weight_decay(ctx: Context) -> str:
    """A tenth of the current value, but no more than the usual one for this optimizer."""
    wd = float(ctx.cfg("optim.weight_decay", 0.0) or 0.0)
    typical = TYPICAL_WEIGHT_DECAY.get(ctx.optimizer or "", DEFAULT_L2_DECAY)
    return f"optim.weight_decay={fmt(nice(min(wd / 10, typical)))}"


def more_dropout(ctx: Context) -> str | None:
    d = ctx.max_dropout()
    return None if d >= 0.5 else f"model.dropout={fmt(min(0.5, round(d + 0.2, 2)))}"


def mixup(ctx: Context) -> str | None:
    """MixUp as a regulariser against overfitting, unless it is already on."""
    return None if float(ctx.cfg("mixup.mixup_alpha", 0.0) or 0.0) > 0 else "mixup.mixup_alpha=0.2"


def early_stopping(ctx: Context) -> str | None:
    return None if ctx.cfg("early_stopping.enabled") else "early_stopping.enabled=true"


# Learning curves fall roughly as a power of the training set's size; a factor of 4 is a step that shows
# on them (twice halves the gap to the next point), at 4x the epoch time.
MORE_DATA = 4


def more_data(ctx: Context) -> str | None:
    """More of the training data the config itself holds back (``data.train_subset``): the first remedy for
    variance when the data is there (a subset past the data's size takes it all). None when the run
    already trains on everything it has."""
    subset = ctx.cfg("data.train_subset")
    if not isinstance(subset, int) or isinstance(subset, bool) or subset <= 0:
        return None
    return f"data.train_subset={subset * MORE_DATA}"


def more_epochs(ctx: Context, factor: int = 2) -> str:
    epochs = ctx.cfg("train.epochs") or (int(ctx.epochs[-1]) if ctx.n else 20)
    return f"train.epochs={int(epochs) * factor}"


# A layer this many times narrower than both its neighbours is a bottleneck, not a funnel or a small model.
BOTTLENECK_RATIO = 4


def _widened(hidden: list[int], classes: int | None) -> list[int]:
    """Each bottleneck lifted to its neighbours' width, else twice the width everywhere.

    A bottleneck is a layer narrower than K (it cannot keep K classes apart) or one with both neighbours
    at least 4x wider; it becomes as wide as its narrower neighbour (``[64, 1, 64]`` -> ``[64, 64, 64]``,
    where doubling gives ``[128, 2, 128]``, the same bottleneck), or, with no neighbour, the smallest
    power of two >= 2K (``[3]`` for 10 classes -> ``[32]``). A funnel (``[512, 128, 32]``) has none.
    """
    floor = 2 ** math.ceil(math.log2(2 * classes)) if classes and classes > 1 else 0
    out = []
    for i, h in enumerate(hidden):
        near = [hidden[j] for j in (i - 1, i + 1) if 0 <= j < len(hidden)]
        pinched = len(near) == 2 and min(near) >= BOTTLENECK_RATIO * h
        if classes and h < classes:
            out.append(max(min(near), h) if near else max(floor, 2 * h))
        else:
            out.append(min(near) if pinched else h)
    return out if out != hidden else [2 * h for h in hidden]


def _widened_stages(channels: list[int], classes: int | None) -> list[int]:
    """A CNN whose last stage is narrower than K (after global pooling all the head sees) lifted at once to
    a sound pyramid: the last stage at the smallest power of two >= 2K, each stage before it at least half
    the next (the usual doubling per stage), so ``[2, 2, 2]`` for 10 classes -> ``[8, 16, 32]``, where
    doubling needs four re-runs to get there. Otherwise twice the width everywhere."""
    if not classes or classes < 3 or not channels or channels[-1] >= classes:
        return [2 * c for c in channels]
    out = [max(channels[-1], 2 ** math.ceil(math.log2(2 * classes)))]
    for c in reversed(channels[:-1]):
        out.insert(0, max(c, out[0] // 2))
    return out


def pinch(ctx: Context) -> tuple[int, str] | None:
    """The narrowest width features pass through on the way to the head, and where, when it is narrower
    than the number of classes: fewer units than classes cannot keep them all apart (an MLP's hidden
    layer; a CNN's last stage, whose channels are all the head sees after global pooling). None for a
    model passed in, or with K unknown."""
    name, classes = ctx.cfg("model.name", "mlp"), ctx.num_classes
    if ctx.user_model or not classes or classes < 3:
        return None
    if name in HIDDEN_MODELS and ctx.cfg("model.hidden"):
        hidden = list(ctx.cfg("model.hidden"))
        width, where = min(hidden), f"hidden layer {hidden.index(min(hidden)) + 1} of model.hidden={hidden}"
    elif name in CHANNEL_MODELS and ctx.cfg("model.channels"):
        channels = list(ctx.cfg("model.channels"))
        width, where = channels[-1], f"the last stage of model.channels={channels} (all the head sees after pooling)"
    else:
        return None
    return (int(width), where) if width < classes else None


def narrower_than_classes(ctx: Context) -> bool:
    """Does the configured model have a layer narrower than K (``pinch``)? Such a layer caps what the network
    can separate however long it trains, so widening it comes before more epochs."""
    return pinch(ctx) is not None


def wider_model(ctx: Context) -> str | None:
    """A wider model on the key the configured builder reads (a bottleneck lifted to its neighbours'
    width or, narrower than K, to a sound width at once; else twice the width); None for a model passed in
    by the user."""
    name = ctx.cfg("model.name", "mlp")
    if ctx.user_model:
        return None
    if name in CHANNEL_MODELS:
        return f"model.channels=[{', '.join(str(c) for c in _widened_stages(list(ctx.cfg('model.channels', [32, 64])), ctx.num_classes))}]"
    if name in HIDDEN_MODELS:
        hidden = ctx.cfg("model.hidden") or [128, 64]
        return f"model.hidden=[{', '.join(str(h) for h in _widened(list(hidden), ctx.num_classes))}]"
    return None  # a package.module:factory model: its width is its own business


# Builders that add batch norm when model.batch_norm is on (convnet and resnet always have it).
BATCH_NORM_MODELS = ("mlp", "cnn")
# Hidden layers from which a network without normalization counts as deep: its activations' scale is
# the product of that many layers' gains, so a bad init or a large step compounds.
DEEP = 3
BATCH_NORM_MIN_BATCH = 8


def depth(ctx: Context) -> int:
    name = ctx.cfg("model.name", "mlp")
    layers = ctx.cfg("model.hidden") if name in HIDDEN_MODELS else ctx.cfg("model.channels") if name in CHANNEL_MODELS else None
    return len(layers) if isinstance(layers, list) else 0


def batch_norm(ctx: Context) -> str | None:
    """Batch norm after every hidden layer, where the configured builder adds it and it is off.

    Normalising each layer's pre-activations undoes a bad weight scale (x10 weights, N(0, 0.01)) and a
    bias shift, keeps gradients from compounding through depth, and tolerates larger steps (Ioffe &
    Szegedy 2015). Not for batches of fewer than BATCH_NORM_MIN_BATCH samples: their statistics are
    noise (Wu & He 2018 measure batch norm's error rising steeply below 8), and one sample has none.
    """
    if ctx.user_model or ctx.cfg("model.name", "mlp") not in BATCH_NORM_MODELS or ctx.cfg("model.batch_norm", False):
        return None
    if int(ctx.cfg("data.batch_size", BATCH_NORM_MIN_BATCH) or BATCH_NORM_MIN_BATCH) < BATCH_NORM_MIN_BATCH:
        return None
    return "model.batch_norm=true"


def deep_unnormalized(ctx: Context) -> bool:
    return batch_norm(ctx) is not None and depth(ctx) >= DEEP


# The scheme that keeps each layer's activation variance for an activation (He et al. 2015 for the ReLU
# family, Glorot & Bengio 2010 for the saturating ones); both set biases to zero.
SOUND_INIT = {"sigmoid": "xavier_normal", "tanh": "xavier_normal", "linear": "xavier_normal"}


def reinit(ctx: Context) -> str | None:
    """A fresh initialisation of every linear and convolution layer with the scheme sound for the
    activation, biases zero (trainwise.techniques.init), where the run kept the model's own init.

    ``init.scheme`` is applied by the Trainer to any model, one passed in included, after it is built,
    so it replaces whatever init the model's code left (biases shifted to -5, weights scaled x10). A run
    that already chose a scheme other than ``zeros`` gets nothing: its init was a decision.
    """
    if not ctx.config_known or ctx.cfg("finetune.init_from"):
        return None  # pretrained weights: a re-initialisation would throw them away
    scheme = ctx.cfg("init.scheme", "default")
    if scheme not in ("default", "zeros"):
        return None
    return f"init.scheme={SOUND_INIT.get(ctx.cfg('model.activation', 'relu'), 'he_normal')}"


def scale_repairs(ctx: Context) -> list[str | None]:
    """For activations or gradients off their scale (saturated, exploding): standardised inputs where the
    run's inputs are raw, then batch norm where the model has none (known from its config; for another
    tool's log it is not known, and batch norm stays among the later fixes)."""
    return [normalize(ctx), batch_norm(ctx) if ctx.config_known else None]


def before_lr(ctx: Context) -> list[str | None]:
    """What a diverging or unstable run tries before a smaller LR: raw inputs standardised (a feature in
    the hundreds makes any LR too large for it), and, for a deep net without normalization whose LR is
    within its optimizer's usual range, batch norm (the LR is then not the likely cause; the compounding
    scale of many unnormalised layers is)."""
    unnormalized = deep_unnormalized(ctx) or (batch_norm(ctx) is not None and gradients_grew(ctx))
    return [normalize(ctx), batch_norm(ctx) if unnormalized and ctx.lr_position() != "high" else None]


# The total gradient norm peaking this many times above its first epoch's level: steps that compound.
GRADIENT_GROWTH = 5.0


def gradients_grew(ctx: Context) -> bool:
    """The gradient norm rose far above its start during the run (gradients piling up, as without
    ``zero_grad``, or activations growing layer by layer), whatever it did afterwards."""
    total = ctx.series("grad_norm")
    finite = signals.finite(total)
    if len(finite) < 3:
        return False
    start = float(finite[0])  # the first epoch: growth within the first few is the case to catch
    return bool(start > 0 and float(finite.max()) >= GRADIENT_GROWTH * start)


def revive(ctx: Context, from_start: bool = True) -> list[str | None]:
    """Fixes for dead ReLUs. Dead from the first epoch at an LR within its usual range, they were dead at
    the init (a bias shift, a bad weight scale): re-initialise first, then normalise pre-activations.
    Units that died later, or under an LR above its range, were killed by the steps, and a fresh init
    would be killed again: batch norm (the LR fix is the rule's own, ahead of these)."""
    by_init = from_start and ctx.lr_position() != "high"
    return [reinit(ctx) if by_init else None, batch_norm(ctx)]


def clip() -> str:
    return "train.grad_clip_norm=1.0"


def normalize(ctx: Context) -> str | None:
    """Only when the run's config turned standardisation off (True is the default, and then it is on)."""
    return "data.normalize=true" if ctx.cfg("data.normalize") is False else None


def decay_schedule(ctx: Context) -> str | None:
    return None if ctx.cfg("schedule.name") not in (None, "none") else "schedule.name=cosine"


def schedule(ctx: Context, name: str) -> str | None:
    return None if ctx.cfg("schedule.name") == name else f"schedule.name={name}"


def keep_augmentation(ctx: Context) -> str | None:
    """The progressive phases with training augmentation kept on in every phase (FixRes fine-tunes at the
    test resolution *with* the training augmentation)."""
    phases = ctx.cfg("progressive.phases") or []
    if not phases or all(p.get("augment", True) for p in phases):
        return None
    tables = []
    for p in phases:
        items = [f"epoch = {int(p['epoch'])}"]
        if p.get("resolution") is not None:
            items.append(f"resolution = {int(p['resolution'])}")
        items.append("augment = true")
        tables.append("{" + ", ".join(items) + "}")
    return f"progressive.phases=[{', '.join(tables)}]"


def keep(*fixes: str | None) -> list[str]:
    """Drop the Nones (fixes that do not apply to this config) and second values for a key already set."""
    out: list[str] = []
    for f in fixes:
        if f and f.split("=", 1)[0] not in {o.split("=", 1)[0] for o in out}:
            out.append(f)
    return out

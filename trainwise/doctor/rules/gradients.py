"""exploding_gradients and vanishing_gradients, from ``grad_norm`` and ``grad_norm/<layer>``.

Both speak only when the loss shows a problem (``outcome_symptoms``): deep sigmoid networks and
unnormalised inputs give first/last-layer ratios far from 1 in runs that train fine (we measured 30x in
a healthy tanh MLP on raw pixels), so a ratio alone is not a finding.

* exploding_gradients: a non-finite gradient norm (error); or the total norm at the end >= 10x its
  level in the first epochs, or a first/last-layer ratio > 70 (AUTOTRAINER's threshold) -- warning,
  error at >= 1000x.
* vanishing_gradients: first-layer norm < 1e-3 of the last layer's (AUTOTRAINER's ratio; its extra
  condition ||g_first|| < 1e-4 depends on layer size, so we leave it out) over the median epoch.
"""

from __future__ import annotations

import math

import numpy as np

from trainwise.doctor import fixes, signals
from trainwise.doctor.codes import Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import MIN_EPOCHS, grad_layers, grad_ratio, outcome_symptoms, sig, span

CODES = (
    Code("exploding_gradients", "warning / error", "gradient norm growth or NaN, with a loss symptom", priority=90),
    Code("vanishing_gradients", "warning", "first-layer gradient << last layer's (frozen layers excluded), with a loss symptom", priority=100),
)

GROWTH = 10.0
EXPLODING_RATIO = 70.0
VANISHING_RATIO = 1e-3


def rule(ctx: Context) -> list[Finding]:
    if not ctx.layer_keys("grad_norm") and not (ctx.has("grad_norm") or ctx.nonfinite("grad_norm").any()):
        return []
    symptoms = outcome_symptoms(ctx)
    if not symptoms:
        return []
    return _exploding(ctx, symptoms) + _vanishing(ctx, symptoms)


def _activation_fix(ctx: Context) -> str | None:
    return "model.activation=relu" if ctx.cfg("model.activation") in ("sigmoid", "tanh") else None


def _exploding(ctx: Context, symptoms: list[str]) -> list[Finding]:
    total = ctx.series("grad_norm")
    bad = ctx.nonfinite("grad_norm")
    for key in ctx.layer_keys("grad_norm"):
        bad |= ctx.nonfinite(key)
    ev: dict = {"symptoms": "; ".join(symptoms)}
    if bad.any():
        first = int(np.argmax(bad))
        return [_finding(ctx, "error", first, ev | {"first_nonfinite_epoch": ctx.epoch_at(first)},
                         f"gradient norms became NaN/Inf at epoch {ctx.epoch_at(first)}")]
    reasons = []
    severity = "warning"
    first = 0
    f = signals.finite(total)
    if len(f) >= MIN_EPOCHS:
        start, end = signals.head_median(total), signals.tail_median(total)
        growth = end / start if start > 0 else math.inf
        ev |= {"grad_norm_start": sig(start), "grad_norm_end": sig(end), "growth": sig(growth)}
        if growth >= GROWTH:
            reasons.append(f"the total gradient norm grew {growth:.3g}x ({start:.3g} -> {end:.3g})")
            first = int(np.argmax(np.nan_to_num(total) >= GROWTH * start))
            severity = "error" if growth >= 1000 else severity
    ratio = grad_ratio(ctx)
    if ratio is not None and ratio > EXPLODING_RATIO:
        ev["first_over_last_layer"] = sig(ratio)
        reasons.append(f"the first layer's gradient is {ratio:.3g}x the last layer's")
    if not reasons:
        return []
    return [_finding(ctx, severity, first, ev, " and ".join(reasons))]


def _finding(ctx: Context, severity: str, first: int, ev: dict, what: str) -> Finding:
    return Finding(
        "exploding_gradients",
        severity,
        span(ctx, first),
        ev,
        f"Exploding gradients: {what}, while {ev['symptoms']}. Clipping bounds each step; normalisation layers and a "
        "smaller LR remove the cause.",
        fixes.keep(*fixes.scale_repairs(ctx), fixes.clip(), fixes.lower_lr(ctx, 0.3), fixes.batch_norm(ctx)),
    )


def _vanishing(ctx: Context, symptoms: list[str]) -> list[Finding]:
    ratio = grad_ratio(ctx)
    if ratio is None or ratio >= VANISHING_RATIO:
        return []
    keys, _ = grad_layers(ctx)
    first_layer, last_layer = keys[0].split("/", 1)[1], keys[-1].split("/", 1)[1]
    ev = {"first_over_last_layer": sig(ratio), "first_layer": first_layer, "last_layer": last_layer, "symptoms": "; ".join(symptoms)}
    act = ctx.cfg("model.activation")
    because = f" through {len(keys)} {act} layers" if act in ("sigmoid", "tanh") else ""
    return [
        Finding(
            "vanishing_gradients",
            "warning",
            span(ctx, 0),
            ev,
            f"Vanishing gradients: {first_layer}'s gradient is {ratio:.1e} of {last_layer}'s{because}, so the early layers "
            f"barely learn, and {'; '.join(symptoms)}.",
            fixes.keep(fixes.batch_norm(ctx), _activation_fix(ctx), "optim.name=adam" if ctx.optimizer == "sgd" else None),
        )
    ]

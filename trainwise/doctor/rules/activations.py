"""dead_units and saturated_units, from ``dead_frac/<layer>`` and ``saturated_frac/<layer>``.

A layer counts when its share (median of the last 3 epochs) is >= 0.5 -- SageMaker's DeadRelu
threshold; DeepDiagnosis uses 70 % of outputs <= 0 (a looser per-output measure) for dead nodes and 50 %
beyond +-5 for saturation. DeepDiagnosis flagged 36 % of healthy models, mostly for dead nodes, because
sparse ReLU layers are normal; so, as for gradients, a finding needs an outcome symptom in the loss.
"""

from __future__ import annotations

import numpy as np

from trainwise.doctor import fixes
from trainwise.doctor.codes import Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules.common import UNIT_SHARE, layers_at_least, outcome_symptoms, sig, span

CODES = (
    Code("dead_units", "warning", "most ReLUs of a layer never active, with a loss symptom", priority=110,
         subsumes=frozenset({"vanishing_gradients"})),
    Code("saturated_units", "warning", "most sigmoid/tanh outputs at their bounds, with a loss symptom", priority=120),
)

THRESHOLD = UNIT_SHARE


def rule(ctx: Context) -> list[Finding]:
    dead = layers_at_least(ctx, "dead_frac")
    saturated = layers_at_least(ctx, "saturated_frac")
    if not dead and not saturated:
        return []
    symptoms = outcome_symptoms(ctx)
    if not symptoms:
        return []
    out = []
    if dead:
        out.append(_finding(ctx, "dead_units", "dead_frac", dead, symptoms))
    if saturated:
        out.append(_finding(ctx, "saturated_units", "saturated_frac", saturated, symptoms))
    return out


def _finding(ctx: Context, code: str, prefix: str, layers: dict[str, float], symptoms: list[str]) -> Finding:
    worst = max(layers, key=layers.get)  # type: ignore[arg-type]
    series = ctx.series(f"{prefix}/{worst}")
    first = int(np.argmax(np.nan_to_num(series) >= THRESHOLD))
    listing = ", ".join(f"{name} {share:.0%}" for name, share in layers.items())
    ev = {"layers": listing, "worst_layer": worst, "worst_share": sig(layers[worst]), "symptoms": "; ".join(symptoms)}
    if code == "dead_units":
        cause = "Units that never activate get no gradient and stay dead: a too-high LR or a negative bias shift kills them."
        fx = fixes.keep(fixes.lower_lr(ctx, 0.3) if ctx.lr_position() == "high" else None, *fixes.revive(ctx, from_start=first == 0),
                        "model.activation=leaky_relu", fixes.lower_lr(ctx, 0.3))
        what = "Dead ReLU units (never active on a sampled batch)"
    else:
        cause = "Saturated units pass almost no gradient; large inputs or weights push sigmoid/tanh into their flat tails."
        fx = fixes.keep(*fixes.scale_repairs(ctx), "model.activation=relu")
        what = "Saturated outputs (within 0.01 of the activation's bounds)"
    return Finding(
        code,
        "warning",
        span(ctx, first),
        ev,
        f"{what}: {listing}, while {'; '.join(symptoms)}. {cause}",
        fx,
    )

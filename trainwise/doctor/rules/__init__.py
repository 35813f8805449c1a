"""Rule families. Each module has ``rule(ctx) -> list[Finding]``; the engine runs them in this order."""

from __future__ import annotations

from collections.abc import Callable

from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules import activations, chance, convergence, divergence, generalization, gradients, phases, predictions

Rule = Callable[[Context], list[Finding]]

RULES: dict[str, Rule] = {
    "divergence": divergence.rule,
    "chance": chance.rule,
    "convergence": convergence.rule,
    "generalization": generalization.rule,
    "phases": phases.rule,
    "gradients": gradients.rule,
    "activations": activations.rule,
    "predictions": predictions.rule,
}

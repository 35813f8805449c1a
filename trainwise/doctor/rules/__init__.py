"""Rule families. Each module has ``rule(ctx) -> list[Finding]`` and ``CODES``, the codes it emits
(trainwise.doctor.codes); the engine runs them in this order and ranks by the declared priorities."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from trainwise.doctor.codes import HEALTHY, TOO_SHORT, Code
from trainwise.doctor.context import Context
from trainwise.doctor.finding import Finding
from trainwise.doctor.rules import activations, chance, convergence, divergence, generalization, gradients, phases, predictions

Rule = Callable[[Context], list[Finding]]

MODULES: dict[str, ModuleType] = {
    "divergence": divergence,
    "chance": chance,
    "convergence": convergence,
    "generalization": generalization,
    "phases": phases,
    "gradients": gradients,
    "activations": activations,
    "predictions": predictions,
}
RULES: dict[str, Rule] = {name: module.rule for name, module in MODULES.items()}


def _registry() -> dict[str, Code]:
    out: dict[str, Code] = {HEALTHY.name: HEALTHY, TOO_SHORT.name: TOO_SHORT}
    for name, module in MODULES.items():
        for code in module.CODES:
            if code.name in out:
                raise ValueError(f"finding code {code.name!r} declared twice (again in rules/{name}.py)")
            out[code.name] = code
    return out


REGISTRY: dict[str, Code] = _registry()
CODES: tuple[str, ...] = tuple(sorted(REGISTRY, key=lambda c: REGISTRY[c].priority))

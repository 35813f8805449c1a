"""The ``phase`` label of the History, composed from the parts each technique sets.

Progressive resizing says ``res16+aug``, fine-tuning says ``head`` or ``all``; together ``res16+aug|head``.
Any change of the label marks a phase boundary for the doctor.
"""

from __future__ import annotations

from trainwise.core import State


def set_phase(state: State, part: str, label: str) -> None:
    parts = state.extras.setdefault("phase_parts", {})
    parts[part] = label
    state.phase = "|".join(parts[k] for k in sorted(parts))

"""Auto-repair: apply the doctor's fixes and keep only those that help (``trainwise fix``), and repair a
run while it trains (``trainwise train --autofix``). See docs/autofix.md.

    import trainwise
    chain = trainwise.fix("runs/broken")      # re-runs under runs/broken/fix, one change per round
    print(chain.to_text())
"""

from __future__ import annotations

import importlib

__all__ = ["FixChain", "doctor_fixes", "fix"]


def __getattr__(name: str):
    # Loaded on first use, so that the report's Repairs section (which lives here) does not import torch.
    if name in __all__:
        return getattr(importlib.import_module("trainwise.autofix.chain"), name)
    raise AttributeError(f"module 'trainwise.autofix' has no attribute {name!r}")

"""``make_monitors(config)``: the training-health callbacks a config asks for (section ``[monitors]``).

Order of work within a step (lower ``order`` runs first): gradient norms (-100) read the raw gradients,
update ratios (-90) copy the weights, activation hooks (-80) and the NaN guard (-50) decide about the
step; clipping, which changes gradients, belongs after all of them.
"""

from __future__ import annotations

from trainwise.callbacks.activations import ActivationMonitor
from trainwise.callbacks.grad_norms import GradNormMonitor
from trainwise.callbacks.nan_guard import NanGuard
from trainwise.callbacks.update_ratios import UpdateRatioMonitor
from trainwise.config import Config, MonitorsConfig
from trainwise.core import Callback

__all__ = ["ActivationMonitor", "GradNormMonitor", "NanGuard", "UpdateRatioMonitor", "make_monitors"]


def make_monitors(config: Config | MonitorsConfig) -> list[Callback]:
    m = config.monitors if isinstance(config, Config) else config
    if not m.enabled:
        return []
    k = m.every_n_steps
    monitors: list[Callback] = []
    if m.grad_norms:
        monitors.append(GradNormMonitor(k))
    if m.update_ratios:
        monitors.append(UpdateRatioMonitor(k))
    if m.activations:
        monitors.append(ActivationMonitor(k))
    monitors.append(NanGuard(m.nan_policy, m.nan_lr_factor, m.nan_max_rollbacks, every_n_steps=k))
    return sorted(monitors, key=lambda c: c.order)

"""Run every rule family, drop findings another finding explains, rank, and add ``healthy``.

Subsumption (the finding on the left explains the ones on the right, so only it is kept):

* ``diverged`` (error) -- everything read from the curves after the divergence (they are NaN or
  garbage): lr_too_high, unstable_training, overfitting, plateau, transient_dip, phase_regression,
  underfitting, stuck_at_chance, lr_too_low, over_regularized, val_above_train, prediction_collapse.
  Gradient and activation findings stay: they point at the cause.
* ``phase_regression`` -- overfitting, unstable_training, lr_too_high, transient_dip that begin at the
  boundary or later: the boundary is the cause.
* ``overfitting`` -- transient_dip inside its span (a dip before the onset stays: it is another event).
* ``lr_too_low`` -- stuck_at_chance, underfitting, plateau: a steady but slow descent is not "stuck",
  and the LR is the cause to name.
* ``over_regularized`` -- underfitting, plateau, val_above_train.
* ``lr_too_low``, ``over_regularized``, ``stuck_at_chance``, ``underfitting`` also explain a *partial*
  prediction_collapse (warning: some classes never recovered) -- a model that cannot fit gives up on
  classes first; a full collapse onto one class (error) always stays.
* ``stuck_at_chance`` -- underfitting, plateau, transient_dip, overfitting, unstable_training,
  val_above_train (a run that ends at chance did not overfit, and how it got there matters less than
  that it is there; its accuracies only mirror the class mix of each split).
* ``lr_too_high`` -- unstable_training, underfitting, plateau (a model the LR has crippled fits poorly;
  more capacity or a larger LR, what underfitting and plateau suggest, would make it worse).
* ``underfitting`` -- plateau.
* ``dead_units`` -- vanishing_gradients (dead layers pass no gradient; the dead units are the cause).

"Event" subsumers (diverged, phase_regression, overfitting) remove a finding only when it begins
inside their span (from one epoch before); "state" subsumers remove any finding whose span overlaps.

Ranking: error, warning, info; within a severity, root causes before symptoms (PRIORITY), then by
first epoch. ``healthy`` is added, first, exactly when no warning or error remains; info findings
(val_above_train, transient_dip, mild overfitting under early stopping) may accompany it because they
explain a curve rather than report a problem.
"""

from __future__ import annotations

import math

import numpy as np

from trainwise.doctor import signals
from trainwise.doctor.context import Context
from trainwise.doctor.finding import SEVERITY_RANK, Finding
from trainwise.doctor.rules import RULES
from trainwise.doctor.rules.common import sig

EVENT, STATE = "event", "state"

SUBSUMES: dict[str, tuple[str, frozenset[str]]] = {
    "diverged": (EVENT, frozenset({
        "lr_too_high", "unstable_training", "overfitting", "plateau", "transient_dip", "phase_regression",
        "underfitting", "stuck_at_chance", "lr_too_low", "over_regularized", "val_above_train", "prediction_collapse",
    })),
    "phase_regression": (EVENT, frozenset({"overfitting", "unstable_training", "lr_too_high", "transient_dip"})),
    "overfitting": (EVENT, frozenset({"transient_dip"})),
    "lr_too_low": (STATE, frozenset({"stuck_at_chance", "underfitting", "plateau", "prediction_collapse"})),
    "over_regularized": (STATE, frozenset({"underfitting", "plateau", "val_above_train", "prediction_collapse"})),
    "stuck_at_chance": (STATE, frozenset({"underfitting", "plateau", "transient_dip", "val_above_train", "prediction_collapse",
                                          "overfitting", "unstable_training"})),
    "lr_too_high": (STATE, frozenset({"unstable_training", "underfitting", "plateau"})),
    "underfitting": (STATE, frozenset({"plateau", "prediction_collapse"})),
    "dead_units": (STATE, frozenset({"vanishing_gradients"})),
}

PRIORITY = (  # healthy heads the info findings it comes with
    "healthy", "diverged", "stuck_at_chance", "prediction_collapse", "lr_too_high", "lr_too_low", "over_regularized",
    "phase_regression", "overfitting", "exploding_gradients", "vanishing_gradients", "dead_units", "saturated_units",
    "unstable_training", "underfitting", "plateau", "val_above_train", "transient_dip",
)


def run_rules(ctx: Context) -> list[Finding]:
    found: list[Finding] = []
    for rule in RULES.values():
        found.extend(rule(ctx))
    return found


def _explains(big: Finding, small: Finding) -> bool:
    entry = SUBSUMES.get(big.code)
    if entry is None or small.code not in entry[1] or big is small:
        return False
    if big.code == "diverged" and big.severity != "error":
        return False
    if small.code == "prediction_collapse" and small.severity == "error" and big.code != "diverged":
        return False  # a full collapse onto one class is its own finding; only the partial one is explained
    (b0, b1), (s0, s1) = big.epochs, small.epochs
    if entry[0] == EVENT:
        return b0 - 1 <= s0 <= b1
    return s0 <= b1 and b0 <= s1


def deduplicate(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not any(_explains(big, f) for big in findings)]


def rank(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], PRIORITY.index(f.code), f.epochs[0]))


def healthy(ctx: Context) -> Finding:
    ev: dict = {"epochs": ctx.n}
    parts = []
    if ctx.has("val_acc"):
        acc = ctx.series("val_acc")
        i = signals.argbest(acc, "max")
        ev |= {"best_val_acc": sig(float(acc[i])), "best_val_acc_epoch": ctx.epoch_at(i)}
        parts.append(f"validation accuracy peaked at {acc[i]:.3f} (epoch {ctx.epoch_at(i)})")
    if ctx.has("val_loss"):
        loss = ctx.series("val_loss")
        i = signals.argbest(loss, "min")
        ev |= {"best_val_loss": sig(float(loss[i])), "best_val_loss_epoch": ctx.epoch_at(i)}
        parts.append(f"validation loss reached {loss[i]:.3g} (epoch {ctx.epoch_at(i)})")
    if ctx.has("train_loss"):
        end = signals.tail_median(ctx.series("train_loss"), 1)
        if math.isfinite(end):
            ev["final_train_loss"] = sig(end)
    if ctx.has("train_acc"):
        ev["final_train_acc"] = sig(float(signals.finite(ctx.series("train_acc"))[-1]))
    detail = ("; " + " and ".join(parts)) if parts else ""
    return Finding(
        "healthy",
        "info",
        (int(ctx.epochs[0]), int(np.max(ctx.epochs))),
        ev,
        f"No problem found in {ctx.n} epochs{detail}.",
        [],
    )


def diagnose_context(ctx: Context) -> list[Finding]:
    findings = rank(deduplicate(run_rules(ctx)))
    if not any(f.severity in ("warning", "error") for f in findings):
        findings = rank([healthy(ctx), *findings])
    return findings

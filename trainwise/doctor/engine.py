"""Run every rule family, drop findings another finding explains, rank, and add ``healthy``.

What explains what is declared with each code (``CODES`` in each rule module; docs/doctor.md shows the
table): a cause subsumes its symptoms -- ``diverged`` (error) everything read from the garbage curves
after it, ``lr_too_low`` the slow fit it causes, ``stuck_at_chance`` the underfitting and plateau of a
run at chance, ``dead_units`` the vanishing gradient of a dead layer. "Event" subsumers (diverged,
phase_regression, overfitting) remove a finding only when it begins inside their span (from one epoch
before); "state" subsumers remove any finding whose span overlaps. ``"code:severity"`` entries explain
only that severity (a partial prediction_collapse, not a full one).

Two findings of one code and severity over overlapping epochs are one finding: the first in rank is
kept. Ranking: error, warning, info; within a severity, root causes before symptoms (the declared
priorities), then by first epoch. ``healthy`` is added, first, exactly when no warning or error
remains; info findings (val_above_train, transient_dip, mild overfitting under early stopping) may
accompany it because they explain a curve rather than report a problem.

Every finding leaves with ``advice``: its fixes in words and numbers (``advice.py``); for a run whose
trainwise config is unknown (another tool's log) the ``--set`` fixes are dropped, since no key of
ours acts on it.
"""

from __future__ import annotations

import math

import numpy as np

from trainwise.doctor import advice, signals
from trainwise.doctor.codes import EVENT
from trainwise.doctor.context import Context
from trainwise.doctor.finding import SEVERITY_RANK, Finding
from trainwise.doctor.rules import CODES, REGISTRY, RULES
from trainwise.doctor.rules.common import MIN_EPOCHS, sig

# Derived from the codes each rule module declares (trainwise.doctor.codes).
PRIORITY: tuple[str, ...] = CODES  # healthy first: it heads the info findings it comes with
SUBSUMES: dict[str, tuple[str, frozenset[str]]] = {name: (c.scope, c.subsumes) for name, c in REGISTRY.items() if c.subsumes}


def run_rules(ctx: Context) -> list[Finding]:
    found: list[Finding] = []
    for rule in RULES.values():
        found.extend(rule(ctx))
    return [advice.complete(ctx, f) for f in found]


def _explains(big: Finding, small: Finding) -> bool:
    code = REGISTRY[big.code]
    if big is small or big.severity not in code.subsumes_at or not code.explains(small.code, small.severity):
        return False
    (b0, b1), (s0, s1) = big.epochs, small.epochs
    if code.scope == EVENT:
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


def one_per_code(findings: list[Finding]) -> list[Finding]:
    """Of two ranked findings with the same code and severity over overlapping epochs, the first: two rules
    that read one instability (swings, and a spike in both curves) say one thing, once."""
    kept: list[Finding] = []
    for f in findings:
        if not any(k.code == f.code and k.severity == f.severity and f.epochs[0] <= k.epochs[1] and k.epochs[0] <= f.epochs[1]
                   for k in kept):
            kept.append(f)
    return kept


def too_short(ctx: Context) -> Finding:
    """In healthy's place for a run of fewer epochs than any trend rule judges: saying "healthy" after two
    epochs would claim what no rule has looked at."""
    return Finding(
        "too_short", "info", (int(ctx.epochs[0]), int(np.max(ctx.epochs))), {"epochs": ctx.n, "epochs_needed": MIN_EPOCHS},
        f"Only {ctx.n} epoch{'s' if ctx.n != 1 else ''}: too few to judge a trend (the rules need at least {MIN_EPOCHS}). "
        "Nothing is wrong so far, and nothing is confirmed either; train longer, or diagnose again when the run has more epochs.",
        [],
    )


def diagnose_context(ctx: Context) -> list[Finding]:
    findings = one_per_code(rank(deduplicate(run_rules(ctx))))
    if not any(f.severity in ("warning", "error") for f in findings):
        findings = rank([(too_short if 0 < ctx.n < MIN_EPOCHS else healthy)(ctx), *findings])
    return findings

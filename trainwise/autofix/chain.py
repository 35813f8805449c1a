"""``trainwise fix RUN``: apply the doctor's fixes one at a time and keep only those that help.

Per round: take the highest-ranked warning or error finding of the current run and its first fix that
applies and was not tried yet (a fix that cannot apply is skipped with the reason); re-run the current
config with that one change, same seed and data; keep the change only if the validation metric improved
by more than the noise, or beat every epoch of the current run's last few (trainwise.autofix.score). An
LR finding goes first when the run's LR lies outside the optimizer's usual range (``doctor_fixes``). A
kept change becomes the current run, and its own findings are read next; a rejected one leaves the current run as it was and the next finding is tried
(its first fix, then the second fixes, and so on); a kept change whose finding is still there is taken
one step further first (trainwise.autofix.follow_through.step). A fix of the LR for a finding about the LR takes
its value from an LR range test on the run's model and data (trainwise.autofix.lr_test). When a kept
change leaves the run healthy, the chain follows it through: one step further along the same line while
each step helps, if validation was still improving or the training set is not fitted yet
(trainwise.autofix.follow_through). The chain stops after ``rounds`` re-runs, when
``budget_epochs`` would be exceeded, when no applicable fix is left, or when a step of the follow-through
does not help. A healthy run is left alone: no re-run. The test split is scored once, at the end, for
the final run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainwise import atomic
from trainwise.autofix import follow_through as follow_up
from trainwise.autofix import lr_test as lr_testing
from trainwise.autofix import score as scoring
from trainwise.autofix.applicable import Sources, apply_fix, why_not
from trainwise.autofix.attempt import Attempt, load_attempt, train_attempt
from trainwise.autofix.report_section import lr_test_text
from trainwise.doctor import Finding
from trainwise.doctor.codes import VERDICTS
from trainwise.doctor.context import Context
from trainwise.doctor.rules.common import MIN_EPOCHS
from trainwise.errors import UserError
from trainwise.interrupt import TrainingInterrupted
from trainwise.rundir import REPORT

Proposer = Callable[[Attempt], Iterator[tuple[Finding | None, str]]]


def doctor_fixes(current: Attempt) -> Iterator[tuple[Finding | None, str]]:
    """The doctor's fixes in the order the chain tries them: each finding's first fix, then the second ...

    One change to the doctor's rank: a finding about the LR comes first when the run's LR lies outside the
    optimizer's usual range the way the finding says. Such an LR is a cause the other findings follow from:
    AdamW at 1e-6 learns nothing, so its predictions collapse onto one class as well, and label smoothing
    (the collapse's fix) spends a re-run on a symptom.
    """
    position = Context.of_config(current.config).lr_position()  # "low", "high" or None
    problems = sorted(current.problems, key=lambda f: not (position is not None and _LR_SIDE.get(f.code) == position))
    for depth in range(max((len(f.fixes) for f in problems), default=0)):
        for f in problems:
            if depth < len(f.fixes):
                yield f, f.fixes[depth]


# Which side of the optimizer's usual range makes each LR finding a cause rather than one reading among others.
_LR_SIDE = {"lr_too_low": "low", "lr_too_high": "high", "diverged": "high"}


@dataclass
class FixChain:
    """What ``trainwise.fix`` returns; ``to_dict()`` is fix.json."""

    run_dir: str
    out: str
    metric: str
    noise: dict[str, Any]
    original: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = ""
    extra_runs: int = 0
    extra_epochs: int = 0

    @property
    def changes(self) -> list[str]:
        return [r["change"] for r in self.rounds if r["kept"]]

    def to_dict(self) -> dict[str, Any]:
        return _json({k: getattr(self, k) for k in ("run_dir", "out", "metric", "noise", "original", "rounds", "skipped", "final",
                                                    "stop_reason", "extra_runs", "extra_epochs")} | {"changes": self.changes})

    def to_text(self) -> str:
        m = self.metric
        lines = [f"fix {self.run_dir}: {m} {_num(self.original['val'])} (noise from the {self.noise['source']}: "
                 f"{_num(self.noise['value'])})"]
        for s in self.skipped:
            lines.append(f"  skipped {s['finding']}: {s['change']} -- {s['reason']}")
        for r in self.rounds:
            if r.get("lr_test"):
                lines.append(f"  round {r['round']}: {lr_test_text(r['lr_test'])}")
            if r.get("follow_through"):
                lines.append(f"  round {r['round']}: the run is healthy; a step further along {r['finding']}")
            elif r.get("step_further"):
                lines.append(f"  round {r['round']}: {r['finding']} after the change that helped; a step further along it")
            if r.get("failed"):
                lines.append(f"  round {r['round']}: {r['finding']} -> {r['change']}: the run failed ({r['failed']}); rejected")
                continue
            verdict = ("kept: above every epoch of the run before" if r.get("above_window") else "kept") if r["kept"] else "rejected"
            lines.append(f"  round {r['round']}: {r['finding']} -> {r['change']}: {m} {_num(r['before'])} -> {_num(r['after'])} "
                         f"({_signed(r['gain'])}, threshold {_num(r['threshold'])}) {verdict}; now {', '.join(r['findings_after']) or '-'} "
                         f"[{r['run_dir']}]")
        f = self.final
        lines.append(f"stopped: {self.stop_reason}")
        lines.append(f"final: {', '.join(self.changes) or 'no change'}; {m} {_num(f.get('val'))}"
                     + (f"; test_acc {_num(f['test']['acc'])} (was {_num(self.original['test']['acc'])})"
                        if f.get("test") and self.original.get("test") else "")
                     + f"; {self.extra_runs} extra runs, {self.extra_epochs} extra epochs")
        return "\n".join(lines) + "\n"


def fix(
    run_dir: str | Path,
    *,
    rounds: int = 3,
    budget_epochs: int | None = None,
    out: str | Path | None = None,
    metric: str = "val_acc",
    noise: str = "spread",
    model: Callable | None = None,
    data: Any = None,
    callbacks: Callable[[], list] | None = None,
    propose: Proposer = doctor_fixes,
    say: Callable[[str], None] | None = None,
    only_if_findings: bool = True,
    lr_test: bool = True,
    follow_through: bool = True,
) -> FixChain:
    """Repair a finished run by re-running it with the doctor's fixes, one change per round; returns the chain.

    ``model``: a function ``(config, data) -> nn.Module`` when the run used a model of your own (each
    attempt needs a fresh one); ``data``: the run's DataSplits, or a function ``config -> DataSplits``
    (then data.* fixes can apply); ``callbacks``: a function returning fresh callbacks per attempt.
    ``metric``: a validation key of the History (losses are minimised). ``noise``: ``spread`` or ``repeat``.
    Attempts go to ``out`` (default ``RUN/fix``), fix.json beside them; they train silently
    (``train.progress = "none"``, their only other difference from the config they test). ``say`` gets a
    line as each attempt starts and ends. ``propose`` replaces the doctor as the source of changes, and
    ``only_if_findings=False`` lets it act on a run the doctor calls healthy and go on after a healthy
    attempt (benchmarks/autofix.py compares strategies that do not read the doctor this way).
    ``lr_test=False`` takes the doctor's LR values as they are (no LR range test); ``follow_through=False``
    stops as soon as a kept change leaves the run healthy.
    """
    from trainwise.api import check_run_dir

    run_dir = check_run_dir(run_dir)
    _check_options(rounds, budget_epochs, metric, noise, model)
    out = Path(out) if out is not None else run_dir / "fix"
    sources = Sources(model=model, data=data, callbacks=callbacks)
    original = load_attempt(run_dir, factory=model is not None)
    if not any(metric in r for r in original.records):
        keys = sorted({k for r in original.records for k in r if k.startswith("val_") and "/" not in k})
        raise UserError(f"the run has no {metric} to compare on", expected=f"one of {', '.join(keys)}" if keys else "a run with a validation split",
                        fix="pass --metric with a key the run records" if keys else "re-train with data.val_fraction > 0")
    chain = FixChain(str(run_dir), str(out), metric, {"source": noise, "value": 0.0},
                     {"val": original.score(metric), "test": original.summary.get("test") and _short(original.summary["test"]),
                      "findings": _codes(original)})
    if not original.problems and only_if_findings:
        short = chain.original["findings"] == ["too_short"]
        chain.stop_reason = (f"too short to judge: {len(original.records)} epoch(s), the doctor needs {MIN_EPOCHS}; nothing to fix yet "
                             "(no re-run): train longer first" if short else
                             "healthy: no warning or error finding, nothing to fix (no re-run)")
        chain.final = {"run_dir": str(run_dir), "val": chain.original["val"], "test": chain.original["test"]}
        _write(chain, out, run_dir)
        return chain
    repeat_threshold = None
    if noise == "repeat":
        if say:
            say(f"noise: training the run again on seed {original.config.train.seed + 1} ({out / 'repeat'}) ...")
        rep = train_attempt(original.config.replace({"train.seed": original.config.train.seed + 1}), sources, out / "repeat")
        chain.extra_runs, chain.extra_epochs = 1, rep.epochs
        repeat_threshold = abs(rep.score(metric) - original.score(metric))
        chain.noise = {"source": "repeat", "value": repeat_threshold, "repeat_run": str(out / "repeat"), "repeat_val": rep.score(metric),
                       "how": f"|{metric}(seed {original.config.train.seed + 1}) - {metric}(seed {original.config.train.seed})|"}
    else:
        n = original.summary.get("val_samples") if scoring.mode_of(metric) == "max" else None
        sampled = (f" and at least 2 * sqrt(2 p (1 - p) / {n}) at the pooled score p, the sampling noise of the {n} "
                   "validation samples") if n else ""
        chain.noise = {"source": "spread", "value": original.noise(metric),
                       "how": f"epoch-to-epoch spread of {metric} over the last {scoring.WINDOW} epochs of each run; "
                              f"threshold 2 * sqrt(before^2 + after^2), at least 0.005{sampled}"}

    current, tried = original, set()
    data_cache: dict[str, Any] = {}
    stop = f"used all {rounds} rounds"
    follow: tuple | None = None  # (finding, kept change, config before, config after, LR test) while following through
    persists: tuple | None = None  # (finding code, kept change, config before, config after) when the kept change left its finding
    for number in range(1, rounds + 1):
        ahead = None
        if follow is not None:
            picked = _next_fix(current, lambda _: follow_up.further(*follow), tried, sources, data_cache, chain)
            if picked is None:
                stop = f"healthy after round {number - 1}; no further step along {follow[0].code} to try"
                break
        else:
            ahead = follow_up.step(*persists[1:]) if persists else None
            picked = _next_fix(current, lambda c: _ahead_first(c, persists, ahead, propose), tried, sources, data_cache, chain)
            if picked is None:
                stop = "no applicable fix left to try"
                break
        finding, change = picked
        ahead = ahead if change == ahead else None
        lr_info = None
        if lr_test and follow is None and ahead is None:  # a step along a kept LR change takes no new range test
            tested, lr_info = lr_testing.range_tested(finding, change, current.config, sources, data_cache[repr(current.config.data)])
            if say and lr_info:
                say(f"round {number}: {lr_test_text(lr_info)}")
            if tested != change and tested in tried:
                lr_info |= {"used": False, "why": f"its suggestion {tested} was tried already"}
            else:
                tried.add(tested)
                if tested != change:
                    tried.discard(change)  # not run: the doctor's value stays open as a later step along the line
                change = tested
        cfg = apply_fix(current.config, change)
        if budget_epochs is not None and chain.extra_epochs + cfg.train.epochs > budget_epochs:
            stop = f"the next attempt ({cfg.train.epochs} epochs) would exceed --budget-epochs {budget_epochs} ({chain.extra_epochs} used)"
            break
        code = finding.code if finding else "change"
        if say:
            say(f"round {number}: {code} -> {change}: training {out / f'round-{number}-{code}'} ...")
        try:
            attempt = train_attempt(cfg, sources, out / f"round-{number}-{code}")
        except (TrainingInterrupted, KeyboardInterrupt):
            raise
        except Exception as err:  # the change made the run fail (batch norm on batches of one ...): a rejected round
            chain.extra_runs += 1
            chain.rounds.append({"round": number, "finding": code, "severity": finding.severity if finding else None,
                                 "finding_epochs": list(finding.epochs) if finding else None, "why": finding.message if finding else "",
                                 "change": change, "run_dir": str(out / f"round-{number}-{code}"), "before": current.score(metric),
                                 "after": None, "gain": None, "threshold": None, "kept": False, "epochs": 0,
                                 "findings_after": [], "failed": f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}",
                                 **_extras(follow, lr_info, ahead)})
            if say:
                say(f"round {number}: the run failed with this change ({type(err).__name__}): rejected")
            if follow is not None:
                stop = f"round {number}, a step further along {follow[0].code}, failed; stopped there"
                break
            continue
        chain.extra_runs += 1
        chain.extra_epochs += attempt.epochs
        before, after = current.score(metric), attempt.score(metric)
        gain = scoring.improvement(before, after, metric)
        threshold = repeat_threshold if repeat_threshold is not None else scoring.spread_threshold(current.noise(metric), attempt.noise(metric))
        threshold = scoring.floor(threshold, before, metric)
        # never below what the validation split's own sampling moves a score by (score.sampling_floor)
        sampling = scoring.sampling_floor(before, after, current.summary.get("val_samples"), metric)
        threshold = max(threshold, sampling)
        # or above every epoch of the current run's window: its swings cannot explain that (score.beats_window)
        steadier = (gain <= threshold and gain > sampling
                    and scoring.beats_window(current.window_best(metric), after, attempt.noise(metric), metric))
        kept = gain > threshold or steadier
        if say:
            say(f"round {number}: {metric} {_num(before)} -> {_num(after)}: {'kept' if kept else 'rejected'}")
        chain.rounds.append({"round": number, "finding": code, "severity": finding.severity if finding else None,
                             "finding_epochs": list(finding.epochs) if finding else None, "why": finding.message if finding else "",
                             "change": change, "run_dir": str(attempt.run_dir), "before": before, "after": after, "gain": gain,
                             "threshold": threshold, "kept": kept, "above_window": steadier, "epochs": attempt.epochs,
                             "findings_after": _codes(attempt),
                             **_extras(follow, lr_info, ahead)})
        if lr_info and attempt.run_dir is not None and lr_info.get("result") is not None:
            lr_info["result"].save(attempt.run_dir)  # the curve beside the attempt it chose the LR for
        if kept:
            _release(current)
            before_cfg, current = current.config, attempt
            persists = None
            if current.problems or not only_if_findings:
                follow = None
                if finding is not None and finding.code in {f.code for f in current.problems}:
                    persists = (finding.code, change, before_cfg, current.config)  # it helped and is not done: more of it first
                elif follow_up.raised_lr(change, before_cfg, current.config) and "underfitting" in {f.code for f in current.problems}:
                    # A raised LR that leaves the run underfitting: one step further up first, at the cost of one
                    # run of the same length, before the finding's fix of twice the epochs.
                    persists = ("underfitting", change, before_cfg, current.config)
            elif not follow_through or finding is None:
                stop = f"healthy after round {number}"
                break
            elif not current.improving(metric) and not current.short_of_fit():
                stop = f"healthy after round {number}, and {metric} had levelled off: nothing to follow further"
                break
            else:  # healthy now: one step further along the line that helped (follow_through.py)
                follow = (finding, change, before_cfg, current.config, lr_info or (follow[4] if follow else None))
        else:
            _release(attempt)
            persists = None  # the step along it did not help (or another fix was tried): the doctor's order from here
            if follow is not None:
                stop = f"round {number}, a step further along {follow[0].code}, did not help; stopped there"
                break
    chain.stop_reason = stop
    test = current.test()
    chain.final = {"run_dir": str(current.run_dir), "val": current.score(metric), "test": test and _short(test),
                   "findings": _codes(current), "config_changes": chain.changes}
    _write(chain, out, run_dir)
    return chain


def _ahead_first(current: Attempt, persists: tuple | None, ahead: str | None, propose: Proposer) -> Iterator[tuple[Finding | None, str]]:
    """After a kept change whose finding is still there: that change one step further first (600 training
    samples helped an overfitted run that still overfits: 2400 next, before early stopping), then the doctor's."""
    if ahead is not None:
        finding = next((f for f in current.problems if f.code == persists[0]), None)
        if finding is not None:
            yield finding, ahead
    yield from propose(current)


def _extras(follow: tuple | None, lr_info: dict[str, Any] | None, ahead: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"follow_through": follow is not None, "step_further": ahead is not None}
    if lr_info:
        out["lr_test"] = lr_testing.summary(lr_info)
    return out


def _next_fix(current: Attempt, propose: Proposer, tried: set[str], sources: Sources, data_cache: dict, chain: FixChain):
    for finding, change in propose(current):
        if change in tried:
            continue
        tried.add(change)
        key = repr(current.config.data)
        if key not in data_cache:
            data_cache.clear()  # one data set in memory at a time
            data_cache[key] = sources.build_data(current.config)
        reason = why_not(change, current.config, sources, data_cache[key])
        if reason is None:
            return finding, change
        chain.skipped.append({"finding": finding.code if finding else None, "change": change, "reason": reason})
    return None


def _check_options(rounds: int, budget_epochs: int | None, metric: str, noise: str, model: Any) -> None:
    if not isinstance(rounds, int) or rounds < 1:
        raise UserError("bad --rounds", expected="a whole number >= 1", received=rounds, fix="e.g. --rounds 3")
    if budget_epochs is not None and (not isinstance(budget_epochs, int) or budget_epochs < 1):
        raise UserError("bad --budget-epochs", expected="a whole number >= 1 (epochs the re-runs may use in all)", received=budget_epochs)
    if not metric.startswith("val_"):
        raise UserError("bad --metric", expected="a validation key such as val_acc or val_loss (runs are compared on validation; "
                        "the test split stays untouched)", received=metric, fix="use --metric val_acc")
    if noise not in scoring.NOISE_SOURCES:
        raise UserError("bad --noise", expected=" or ".join(scoring.NOISE_SOURCES), received=noise)
    if model is not None and not callable(model) or hasattr(model, "state_dict"):
        raise UserError("bad model for fix", expected="a function (config, data) -> nn.Module: every attempt trains a fresh model",
                        received=type(model).__name__, fix="pass model=lambda cfg, data: MyNet()")


def _release(attempt: Attempt) -> None:
    attempt.trainer = attempt.test_loader = None


def _codes(attempt: Attempt) -> list[str]:
    """The problems' codes, or the doctor's verdict when there are none (``healthy``, or ``too_short``)."""
    verdict = next((f.code for f in attempt.findings if f.code in VERDICTS), "healthy")
    return [f.code for f in attempt.problems] or [verdict]


def _short(test: dict[str, Any]) -> dict[str, Any]:
    return {k: test[k] for k in ("acc", "loss", "macro_f1") if k in test}


def _write(chain: FixChain, out: Path, run_dir: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = chain.to_dict() | {"written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic.write_json(out / "fix.json", data)
    if (run_dir / REPORT).is_file():  # the run's report gains the chain as its Repairs section
        from trainwise.report import render_report

        render_report(run_dir, repairs=data)


def _json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    return v


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)


def _signed(v: Any) -> str:
    return f"{v:+.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

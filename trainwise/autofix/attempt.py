"""One attempt of a repair chain: a finished run (read from its directory, or trained here) and its score.

Attempts are trained without their test split: the chain compares runs on validation only, and the
test split is scored once, for the run the chain ends with (:meth:`Attempt.test`).

With a model factory (``trainwise.fix(run, model=...)``) the findings are the doctor's as for a
config-built model. The doctor leaves ``model.*`` fixes out for a model passed in, because it cannot
tell whether that model's code reads them; the chain can: it builds the factory's network with and
without each change (applicable.why_not) and skips, with the reason, a key the factory ignores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwise.autofix import score as scoring
from trainwise.autofix.applicable import Sources
from trainwise.config import Config
from trainwise.doctor import Diagnosis, Finding, diagnose
from trainwise.errors import UserError
from trainwise.rundir import FINDINGS, SUMMARY, RunDir


@dataclass
class Attempt:
    config: Config
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    findings: list[Finding]
    run_dir: Path | None = None
    trainer: Any = field(default=None, repr=False)  # kept for the test at the end
    test_loader: Any = field(default=None, repr=False)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in ("warning", "error")]

    @property
    def epochs(self) -> int:
        return len(self.records)

    def score(self, metric: str) -> float:
        return scoring.score(self.records, metric, self.summary.get("restored_epoch"))

    def improving(self, metric: str) -> bool:
        return scoring.still_improving(self.records, metric, self.summary.get("restored_epoch"))

    def short_of_fit(self) -> bool:
        """Still short of fitting its own training set (scoring.short_of_fit), with nothing in the config that
        holds training accuracy down by design (dropout, augmentation, MixUp / CutMix)."""
        from trainwise.doctor.context import Context

        if Context.of_config(self.config).train_handicaps():
            return False
        return scoring.short_of_fit(self.records, self.summary.get("restored_epoch"))

    def noise(self, metric: str) -> float:
        return scoring.spread(self.records, metric, self.summary.get("restored_epoch"))

    def window_best(self, metric: str) -> float:
        return scoring.window_best(self.records, metric, self.summary.get("restored_epoch"))

    def test(self) -> dict[str, Any] | None:
        """Test metrics of the final weights: from the summary of a run trained with its test split, or scored now."""
        if self.summary.get("test"):
            return self.summary["test"]
        if self.trainer is None or self.test_loader is None:
            return None
        test = self.trainer.evaluate(loader=self.test_loader)
        self.summary["test"] = test
        if self.run_dir is not None:
            RunDir(self.run_dir).write_json(SUMMARY, self.summary)  # with its checksum, as the Trainer wrote it
        return test


def factory_findings(records: list[dict[str, Any]], cfg: Config, summary: dict[str, Any]) -> list[Finding]:
    """The doctor's findings with the model's own ``model.*`` keys in play (see the module docstring)."""
    return list(diagnose(records, cfg, num_classes=summary.get("num_classes"), task=summary.get("task"),
                         predictions=(summary.get("test") or {}).get("confusion"), user_model=False))


def load_attempt(run_dir: Path, factory: bool = False) -> Attempt:
    """A finished run directory as the chain's starting point (its findings.json, or a fresh diagnosis;
    with a model factory, the diagnosis with its model keys in play)."""
    run = RunDir(run_dir)
    records = run.load_history().records
    if not records:
        raise UserError(f"{run_dir} has no training history to repair", expected="history.jsonl with at least one epoch",
                        fix="train the run first (trainwise train CONFIG --out RUN)")
    cfg = run.load_config()
    summary = run.read_json(SUMMARY)
    if factory:
        findings = factory_findings(records, cfg, summary)
    elif run.file(FINDINGS).is_file():
        findings = [Finding.from_dict(d) for d in run.read_json(FINDINGS)["findings"]]
    else:
        findings = list(diagnose(run_dir))
    return Attempt(cfg, records, summary, findings, run_dir)


def train_attempt(cfg: Config, sources: Sources, run_dir: Path | None) -> Attempt:
    from trainwise.trainer import Trainer

    cfg = cfg.replace({"train.progress": "none"})  # the chain reports per attempt; epoch lines would bury it
    data = sources.build_data(cfg)
    model = sources.build_model(cfg, data)
    callbacks = sources.callbacks() if sources.callbacks else []
    trainer = Trainer(cfg, model=model, data=data, callbacks=callbacks, run_dir=run_dir)
    test_loader = trainer.eval_loaders.pop("test", None)  # untouched until the chain's end
    run = trainer.fit()
    findings: Diagnosis | list = run.findings if sources.model is None else factory_findings(run.history.records, run.config, run.summary)
    return Attempt(run.config, list(run.history.records), dict(run.summary), list(findings), run_dir, trainer, test_loader)

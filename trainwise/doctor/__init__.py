"""The doctor: why a run went wrong, from its History alone (plus its config and test predictions).

    from trainwise.doctor import diagnose
    for finding in diagnose("runs/digits-2024-05-01"):
        print(finding)

``diagnose`` never imports the trainer, so it works on old runs, on foreign logs (Keras, Lightning,
fastai, Hugging Face, TensorBoard, text) and on hand-written records; ``result.assumptions`` says every
guess made in reading them. See docs/doctor.md for every rule, its thresholds and the reasoning behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwise.doctor.context import DATASET_CLASSES, Context, Predictions
from trainwise.doctor.engine import diagnose_context
from trainwise.doctor.expectations import ExpectationMiss, check_expectations, parse_expectation
from trainwise.doctor.finding import CODES, SEVERITIES, Finding
from trainwise.doctor import readers_config
from trainwise.doctor.readers import read_history
from trainwise.errors import UserError
from trainwise.history import History

__all__ = [
    "CODES", "SEVERITIES", "Diagnosis", "ExpectationMiss", "Finding", "check_expectations", "diagnose",
    "parse_expectation", "read_history",
]


class Diagnosis(list[Finding]):
    """The findings, most serious first, plus ``misses`` (the user's expectations that failed) and
    ``assumptions`` (sentences: what reading the log had to guess, e.g. which of several runs)."""

    def __init__(self, findings: list[Finding], misses: list[ExpectationMiss] | None = None,
                 assumptions: list[str] | None = None, runs: int = 1):
        super().__init__(findings)
        self.misses: list[ExpectationMiss] = list(misses or [])
        self.assumptions: list[str] = list(assumptions or [])
        self.runs = runs  # runs found in the log (several appended to one file); this diagnosis is of one

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    @property
    def exit_code(self) -> int:
        """What ``trainwise diagnose`` exits with, as a linter does: 1 on an error-level finding or a missed
        expectation, else 0 (warnings inform; 2 is kept for user mistakes)."""
        return 1 if self.misses or any(f.severity == "error" for f in self) else 0

    @property
    def ok(self) -> bool:
        """No warning or error and no missed expectation."""
        return not self.misses and all(f.severity == "info" for f in self)

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self], "expectation_misses": [m.to_dict() for m in self.misses],
                "assumptions": list(self.assumptions), "runs": self.runs}


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _config_dict(config: Any) -> dict[str, Any]:
    """A nested dict with trainwise's defaults filled in where the given config is silent."""
    if config is None:
        return {}
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    from trainwise.config import Config  # pydantic import only when a config is involved

    return _deep_merge(Config().to_dict(), raw)


def _classes_from_config(raw: Any) -> int | None:
    """K from the config the user gave (not from defaults: an absent data.name means unknown)."""
    if raw is None:
        return None
    d = raw.to_dict() if hasattr(raw, "to_dict") else raw
    data = d.get("data", {}) if isinstance(d, dict) else {}
    if data.get("classes"):
        return len(data["classes"])
    return DATASET_CLASSES.get(data.get("name") or "")


def _given_config(config: Any) -> tuple[Any, int | None, str | None, list[str], bool]:
    """(config, classes, task, assumptions, foreign) for what was passed as ``config``.

    A file or dict that uses other frameworks' names states a foreign run's known hyperparameters
    (``readers_config``); one in trainwise's sections only, or a Config, is a trainwise config.
    """
    if isinstance(config, (str, Path)):
        data = readers_config.load_file(Path(config))
        if set(data) <= readers_config.sections():
            readers_config.foreign_config(data)  # the same one-line errors for a wrong value
            return data, None, None, [], False
    elif isinstance(config, dict) and config and not set(config) <= readers_config.sections():
        data = config
    else:
        return config, None, None, [], False
    mapped, classes, task, said = readers_config.foreign_config(data)
    return mapped, classes, task, said, True


def diagnose(
    source: History | list[dict[str, Any]] | str | Path,
    config: dict[str, Any] | Any | str | Path | None = None,
    *,
    classes: int | None = None,
    task: str | None = None,
    num_classes: int | None = None,
    predictions: Any = None,
    expect: list[str] | None = None,
    columns: dict[str, str] | None = None,
    run: int | None = None,
    user_model: bool = False,
) -> Diagnosis:
    """Findings for a run, most serious first; ``[healthy]`` (plus explanatory info) when nothing is wrong.

    ``source``: a History, a list of per-epoch record dicts, or a path (run directory, history.jsonl, a
    Keras/Lightning/fastai CSV, trainer_state.json, TensorBoard events, a text log; ``columns`` maps other
    names to trainwise keys; ``run`` picks one of several runs appended to one log, default the last).
    ``config``: the run's Config or its dict (a run directory's config.toml is read when not given), or a
    TOML/YAML/JSON file (or dict) stating a foreign run's known hyperparameters (optimizer, lr, schedule,
    batch_size, label_smoothing, mixup, ...). ``classes``: the number of classes K (``num_classes`` is
    the same); ``task``: multiclass, binary or regression. ``predictions``: a confusion matrix or
    ``{"confusion"|"precision"|"recall": ...}``. ``expect``: expectation strings (default: the config's
    ``doctor.expect``); misses are in ``result.misses``. ``result.assumptions``: what had to be guessed. ``user_model``: the model was passed in
    rather than built from ``model.*`` (a run directory's summary.json says so), so no model.* fix applies.
    """
    if classes is not None and num_classes is not None and classes != num_classes:
        raise UserError("classes and num_classes disagree", received=f"{classes} and {num_classes}", fix="pass one of them")
    classes = classes if classes is not None else num_classes
    readers_config.check_task(classes, task)
    meta: dict[str, Any] = {}
    if isinstance(source, History):
        records = list(source.records)
    elif isinstance(source, (str, Path)):
        records, meta = read_history(source, columns, run)
    elif isinstance(source, list):
        records = list(source)
    else:
        raise UserError("cannot diagnose this source", expected="a History, a list of record dicts or a path",
                        received=type(source).__name__)
    if not records:
        raise UserError("nothing to diagnose", expected="at least one epoch record", received="an empty history")
    assumptions = list(meta.get("assumptions", []))
    given, cfg_classes, cfg_task, said, foreign_cfg = _given_config(config)
    assumptions += said
    classes = classes if classes is not None else cfg_classes
    task = task if task is not None else cfg_task
    readers_config.check_task(classes, task)
    foreign = foreign_cfg or meta.get("format", "trainwise") != "trainwise"
    raw_config = given if given is not None else meta.get("config")
    # A foreign run's unstated settings are unknown, not trainwise's defaults.
    cfg = (raw_config or {}) if foreign else _config_dict(raw_config)
    known_classes = classes or meta.get("num_classes") or (None if foreign else _classes_from_config(raw_config))
    if meta.get("composite_loss"):
        known_classes = None  # a sum of several heads' losses has no ln K (the reader says so)
    ctx = Context(
        records=records,
        config=cfg,
        num_classes=known_classes,
        task=task or meta.get("task"),
        predictions=Predictions.parse(predictions if predictions is not None else meta.get("predictions")),
        foreign=foreign,
        user_model=user_model or meta.get("model_source") == "user",
    )
    # What the rules' context had to guess (e.g. K from the initial loss), when it says so itself.
    said_by_context = [a for a in getattr(ctx, "assumptions", None) or [] if a not in assumptions]
    assumptions += said_by_context
    if foreign and not meta.get("composite_loss") and not any("class" in a for a in said_by_context):
        assumptions += _class_assumptions(known_classes, ctx)
    if expect is None:
        expect = list(cfg.get("doctor", {}).get("expect", []) or [])
    return Diagnosis(diagnose_context(ctx), check_expectations(records, expect), assumptions, meta.get("runs", 1))


def _class_assumptions(given: int | None, ctx: Context) -> list[str]:
    """Say where K came from when the log did not state it."""
    if given is not None or ctx.task == "regression":
        return []
    if ctx.num_classes:
        return [f"the number of classes was not given; K = {ctx.num_classes} was inferred "
                f"(chance loss ln K = {ctx.chance_loss:.3g}); pass classes=K (CLI --classes K) if that is wrong"]
    return ["the number of classes is unknown, so the chance levels ln K and 1/K were not used; "
            "pass classes=K (CLI --classes K)"]

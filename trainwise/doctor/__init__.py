"""The doctor: why a run went wrong, from its History alone (plus its config and test predictions).

    from trainwise.doctor import diagnose
    for finding in diagnose("runs/digits-2024-05-01"):
        print(finding)

``diagnose`` never imports the trainer, so it works on old runs, on Keras/Lightning CSV logs and on
hand-written records. See docs/doctor.md for every rule, its thresholds and the reasoning behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwise.doctor.context import DATASET_CLASSES, Context, Predictions
from trainwise.doctor.engine import diagnose_context
from trainwise.doctor.expectations import ExpectationMiss, check_expectations, parse_expectation
from trainwise.doctor.finding import CODES, SEVERITIES, Finding
from trainwise.doctor.readers import read_history
from trainwise.errors import UserError
from trainwise.history import History

__all__ = [
    "CODES", "SEVERITIES", "Diagnosis", "ExpectationMiss", "Finding", "check_expectations", "diagnose",
    "parse_expectation", "read_history",
]


class Diagnosis(list[Finding]):
    """The findings, most serious first, plus ``misses``: the user's expectations that failed."""

    def __init__(self, findings: list[Finding], misses: list[ExpectationMiss] | None = None):
        super().__init__(findings)
        self.misses: list[ExpectationMiss] = list(misses or [])

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    @property
    def ok(self) -> bool:
        """No warning or error and no missed expectation."""
        return not self.misses and all(f.severity == "info" for f in self)

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self], "expectation_misses": [m.to_dict() for m in self.misses]}


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


def diagnose(
    source: History | list[dict[str, Any]] | str | Path,
    config: dict[str, Any] | Any | None = None,
    *,
    num_classes: int | None = None,
    task: str | None = None,
    predictions: Any = None,
    expect: list[str] | None = None,
    columns: dict[str, str] | None = None,
) -> Diagnosis:
    """Findings for a run, most serious first; ``[healthy]`` (plus explanatory info) when nothing is wrong.

    ``source``: a History, a list of per-epoch record dicts, or a path (run directory, history.jsonl,
    Keras/Lightning CSV; ``columns`` maps other CSV headers to trainwise keys). ``config``: the run's
    Config or its dict (a run directory's config.toml is read when not given). ``predictions``: a
    confusion matrix or ``{"confusion"|"precision"|"recall": ...}``. ``expect``: expectation strings
    (default: the config's ``doctor.expect``); misses are in ``result.misses``.
    """
    meta: dict[str, Any] = {}
    if isinstance(source, History):
        records = list(source.records)
    elif isinstance(source, (str, Path)):
        records, meta = read_history(source, columns)
    elif isinstance(source, list):
        records = list(source)
    else:
        raise UserError("cannot diagnose this source", expected="a History, a list of record dicts or a path",
                        received=type(source).__name__)
    if not records:
        raise UserError("nothing to diagnose", expected="at least one epoch record", received="an empty history")
    raw_config = config if config is not None else meta.get("config")
    cfg = _config_dict(raw_config)
    ctx = Context(
        records=records,
        config=cfg,
        num_classes=num_classes or meta.get("num_classes") or _classes_from_config(raw_config),
        task=task or meta.get("task"),
        predictions=Predictions.parse(predictions if predictions is not None else meta.get("predictions")),
    )
    if expect is None:
        expect = list(cfg.get("doctor", {}).get("expect", []) or [])
    return Diagnosis(diagnose_context(ctx), check_expectations(records, expect))

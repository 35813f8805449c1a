"""JSON logs: Hugging Face ``trainer_state.json``, a Keras ``history.history`` dump, a list of records.

``trainer_state.json`` keeps ``log_history``: training rows every ``logging_steps`` (``loss``,
``learning_rate``, ``grad_norm``, a fractional ``epoch`` and ``step``), evaluation rows (``eval_loss``,
``eval_accuracy``, ...), and a closing summary (``train_loss`` averaged over the whole run,
``train_runtime``), which is not an epoch and is dropped. Evaluation rows become the epochs: each one
with the mean training loss of the steps logged since the previous one. Without evaluations, the
training rows are grouped by epoch, or by a fixed number of steps when the run lasted fewer than four
epochs. The state's ``train_batch_size`` and ``num_train_epochs`` go into the config.

Ludwig's ``training_statistics.json`` nests the lists two levels deep: split (``training``,
``validation``, ``test``) -> output feature (or ``combined``, the summed loss) -> metric -> one value per
epoch. The feature that has an accuracy is read (the first in the file if several do), ``combined``
supplies the loss where the feature has none; the reading says which feature it took.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from trainwise.doctor.readers_rows import Table
from trainwise.errors import UserError

HF_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos")
EVAL_PREFIXES = ("eval_", "test_", "predict_")
MIN_EPOCHS = 4  # fewer epochs than this give the rules too few points; steps are grouped instead


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as err:
        raise UserError(f"{str(path)!r} is not valid JSON", expected="a JSON log such as trainer_state.json",
                        received=f"{err.msg} at line {err.lineno}",
                        fix="pass the file the training wrote, unedited") from None


def read_table(path: Path, data: Any) -> tuple[Table, dict[str, Any]]:
    """(table, config dict) for any of the JSON shapes this module knows."""
    if isinstance(data, dict) and isinstance(data.get("log_history"), list):
        return _hf(data)
    if isinstance(data, dict) and _is_ludwig(data):
        return _ludwig(data)
    keys = _history_keys(data) if isinstance(data, dict) else []
    if len(keys) > 1:  # {"phase1": {"loss": [...], ...}, "phase2": {...}, "best_phase": 2}
        return _concatenated(path, data, keys)
    if keys:  # {"model_info": {...}, "training_history": {"loss": [...], ...}, ...}
        nested = keys[0]
        table, config = read_table(path, data[nested])
        table.assumptions.insert(0, f"the history is the lists under {nested!r}; the other top-level entries ({', '.join(k for k in data if k != nested)[:120]}) describe the run and are left out")
        return table, config
    if isinstance(data, dict) and data and _lists_with_scalars(data):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        n = max(len(v) for v in lists.values())
        rows = [{k: float(v[i]) for k, v in lists.items() if i < len(v) and _is_number(v[i])} for i in range(n)]
        said = ["Keras history: entry i of each list is epoch i + 1"]
        scalars = [k for k in data if k not in lists]
        if scalars:
            said.append(f"{len(scalars)} single values beside the per-epoch lists ({', '.join(scalars[:6])}) are a summary, not epochs: left out")
        return Table(rows=[r for r in rows if r], fmt="keras_history_json", assumptions=said), {}
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        rows = [{k: float(v) for k, v in r.items() if _is_number(v)} for r in data]
        return Table(rows=[r for r in rows if r], fmt="json_records", position_word="entry",
                     lines=[i + 1 for i, r in enumerate(rows) if r]), {}
    raise UserError(f"cannot read a training history from {str(path)!r}",
                    expected="a Hugging Face trainer_state.json (with log_history), a Keras history dict of lists, or a list of records",
                    received=_described(data),
                    fix="pass trainer_state.json or the history the training saved")


def _described(data: Any) -> str:
    if isinstance(data, (dict, list)) and not data:
        return f"an empty JSON {type(data).__name__}"
    return f"JSON dict with keys {', '.join(list(data)[:8])}" if isinstance(data, dict) else f"JSON {type(data).__name__}"


LUDWIG_SPLITS = {"training": "train_", "train": "train_", "validation": "val_", "test": "test_"}
LUDWIG_META = "evaluation_frequency"  # {"frequency": N, "period": "epoch" | "step"} in newer versions


def _is_ludwig(data: dict[str, Any]) -> bool:
    splits = {k: v for k, v in data.items() if k != LUDWIG_META}
    return (("training" in splits or "train" in splits) and set(splits) <= set(LUDWIG_SPLITS) and all(
        isinstance(f, dict) and f and all(isinstance(m, dict) and all(isinstance(v, list) for v in m.values()) for m in f.values())
        for f in splits.values()))


def _ludwig(data: dict[str, Any]) -> tuple[Table, dict[str, Any]]:
    train = data.get("training", data.get("train"))
    features = [f for f in train if f != "combined"]
    feature = next((f for f in features if "accuracy" in train[f]), features[0] if features else "combined")
    columns: dict[str, list] = {}
    for split, prefix in LUDWIG_SPLITS.items():
        metrics = dict(data.get(split, {}).get(feature, {}))
        if "loss" not in metrics and "loss" in data.get(split, {}).get("combined", {}):
            metrics["loss"] = data[split]["combined"]["loss"]
        columns |= {prefix + name: values for name, values in metrics.items()}
    n = max((len(v) for v in columns.values()), default=0)
    rows = [{k: float(v[i]) for k, v in columns.items() if i < len(v) and _is_number(v[i])} for i in range(n)]
    every = data.get(LUDWIG_META) if isinstance(data.get(LUDWIG_META), dict) else {}
    unit = "epoch" if every.get("period", "epoch") == "epoch" and every.get("frequency", 1) == 1 else \
        f"evaluation every {every.get('frequency', 1)} {every.get('period', 'epoch')}s, taken as one epoch"
    said = [f"Ludwig training statistics: entry i of each list is {'epoch i + 1' if unit == 'epoch' else unit}; output feature {feature!r}"
            + (f" (of {len(features)}: {', '.join(features[:4])})" if len(features) > 1 else "")]
    return Table(rows=[r for r in rows if r], fmt="ludwig_training_statistics", assumptions=said), {}


def _history_keys(data: dict[str, Any]) -> list[str]:
    """The top-level keys whose values are histories (dicts of two or more per-epoch lists), where the top
    level itself holds no lists: one is a history saved beside the run's description; several are
    histories side by side, when they share a metric name (else none: which one is the run's is not for a
    reader to guess)."""
    if any(isinstance(v, list) for v in data.values()):
        return []
    keys = [k for k, v in data.items() if isinstance(v, dict) and sum(isinstance(x, list) for x in v.values()) >= 2
            and _lists_with_scalars(v)]
    if len(keys) > 1 and not set.intersection(*({m for m, x in data[k].items() if isinstance(x, list)} for k in keys)):
        return []
    return keys


# Keys that name stages of one training run (a head trained first, then the whole network) rather than runs.
PHASE_NAME = re.compile(r"phase|stage|part|warm|head|fine|tun|unfr|froz|frozen|step|round|^p\d", re.IGNORECASE)


def _concatenated(path: Path, data: dict[str, Any], keys: list[str]) -> tuple[Table, dict[str, Any]]:
    """The histories one after the other: the phases of one run when every key names a stage (``phase1``,
    ``stage_2``, ``head``, ``finetune``), each row then carrying its phase, so that the phase rules see the
    boundary; else runs side by side, which are never averaged (the last is diagnosed, as for any log that
    holds several runs)."""
    tables = [read_table(path, data[k])[0] for k in keys]
    rows = [r for t in tables for r in t.rows]
    labels = [k for k, t in zip(keys, tables) for _ in t.rows]
    rest = [k for k in data if k not in keys]
    left = f"; the other top-level entries ({', '.join(rest)[:120]}) describe the run and are left out" if rest else ""
    if all(PHASE_NAME.search(k) for k in keys):
        starts = [sum(len(t.rows) for t in tables[:i]) + 1 for i in range(1, len(tables))]
        said = [f"the histories under {', '.join(map(repr, keys))} are taken as consecutive phases of one run, in file "
                f"order: epochs numbered on across them, a phase starting at epoch {', '.join(map(str, starts))}{left}"]
        return Table(rows=rows, fmt="keras_history_json_phases", assumptions=said, phases=labels), {}
    said = [f"the histories under {', '.join(map(repr, keys))} are separate runs side by side{left}"]
    return Table(rows=rows, fmt="keras_history_json_runs", assumptions=said, run_names=labels), {}


def _lists_with_scalars(data: dict[str, Any]) -> bool:
    """A dict of per-epoch lists, possibly with a few single numbers beside them (a best epoch, a test
    accuracy, the epoch a second phase began), as loops that dump their own history often write it."""
    lists = [v for v in data.values() if isinstance(v, list)]
    others = [v for v in data.values() if not isinstance(v, list)]
    if not others:
        return bool(lists)
    return len(lists) >= 2 and all(_summary(v) for v in others)


def _summary(v: Any) -> bool:
    """A value that describes a run rather than its epochs: a number, a string, or a dict of such (the
    accuracy per class, the images per class) -- nothing that holds a list."""
    if isinstance(v, dict):
        return all(_summary(x) for x in v.values())
    return v is None or isinstance(v, (str, bool)) or _is_number(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)) or v in ("nan", "NaN", "inf", "Infinity")


def _hf(state: dict[str, Any]) -> tuple[Table, dict[str, Any]]:
    log = [e for e in state["log_history"] if isinstance(e, dict)]
    entries = [e for e in log if not any(k in e for k in HF_SUMMARY_KEYS)]
    evals = [e for e in entries if any(k.startswith("eval_") for k in e)]
    rows: list[dict[str, float]] = []
    for e in entries:
        row = {k: float(v) for k, v in e.items() if _is_number(v) and not k.endswith(("_runtime", "_per_second"))}
        if "loss" in row and not any(k.startswith(EVAL_PREFIXES) for k in row):
            row["train_loss_step"] = row.pop("loss")  # HF's "loss" is the mean over the last logging_steps
        rows.append(row)
    config: dict[str, Any] = {}
    if isinstance(state.get("train_batch_size"), int):
        config.setdefault("data", {})["batch_size"] = state["train_batch_size"]
    epochs = [r["epoch"] for r in rows if "epoch" in r]
    last_epoch = max(epochs) if epochs else 0.0
    table = Table(rows=rows, fmt="hf_trainer_state", lines=[int(r.get("step", i)) for i, r in enumerate(rows)],
                  position_word="step", fractional_epochs=True)
    if evals:
        table.group_by = "evaluation"
        per_epoch = len(evals) / last_epoch if last_epoch else math.inf
        if abs(per_epoch - 1.0) > 0.05:
            table.assumptions.append(f"Hugging Face log_history: {len(evals)} evaluations over {last_epoch:.3g} epochs")
        else:
            table.assumptions.append("Hugging Face log_history: one evaluation per epoch, so epochs are as logged")
    elif math.ceil(last_epoch - 1e-6) < MIN_EPOCHS:
        table.group_by = "steps"
        for r in rows:
            r.pop("epoch", None)
        table.assumptions.append(f"Hugging Face log_history without evaluations over {last_epoch:.3g} epochs: "
                                 "too few epochs to judge, so the training rows are grouped by steps")
    if isinstance(state.get("num_train_epochs"), (int, float)) and not evals and table.group_by is None:
        config.setdefault("train", {})["epochs"] = int(state["num_train_epochs"])
    return table, config

"""Read a training history from disk into trainwise records, whatever wrote it.

Accepted: a trainwise run directory (``history.jsonl`` + ``config.toml`` + ``summary.json``), a
trainwise ``history.jsonl``, a Keras ``CSVLogger`` file (one row per epoch, 0-based ``epoch``), a
Lightning ``CSVLogger`` ``metrics.csv`` (rows per step and per validation, grouped here by epoch), a
directory holding one of those, or any CSV with a column mapping.

Normalisation: metric names map to trainwise keys (``loss`` -> ``train_loss``, ``val_accuracy`` ->
``val_acc``, ``train_loss_epoch`` -> ``train_loss`` ...; see ``ALIASES``); epochs become 1-based;
accuracies logged in percent become fractions; rows of one epoch are averaged (step-level losses give
the epoch mean; ``lr`` and ``step`` take the last value). Columns that map to nothing are kept under
their own names, so monitors' keys pass through.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path
from typing import Any

from trainwise.errors import UserError
from trainwise.history import History

ALIASES: dict[str, str] = {
    "loss": "train_loss",
    "train_loss": "train_loss",
    "training_loss": "train_loss",
    "train_loss_epoch": "train_loss",
    "train_loss_step": "train_loss",
    "accuracy": "train_acc",
    "acc": "train_acc",
    "train_acc": "train_acc",
    "train_accuracy": "train_acc",
    "train_acc_epoch": "train_acc",
    "train_acc_step": "train_acc",
    "categorical_accuracy": "train_acc",
    "sparse_categorical_accuracy": "train_acc",
    "binary_accuracy": "train_acc",
    "val_loss": "val_loss",
    "valid_loss": "val_loss",
    "validation_loss": "val_loss",
    "val_loss_epoch": "val_loss",
    "val_accuracy": "val_acc",
    "val_acc": "val_acc",
    "valid_acc": "val_acc",
    "validation_accuracy": "val_acc",
    "val_acc_epoch": "val_acc",
    "val_categorical_accuracy": "val_acc",
    "val_sparse_categorical_accuracy": "val_acc",
    "val_binary_accuracy": "val_acc",
    "val_precision": "val_precision",
    "val_recall": "val_recall",
    "val_f1": "val_f1",
    "lr": "lr",
    "learning_rate": "lr",
    "lr-adam": "lr",
    "lr-adamw": "lr",
    "lr-sgd": "lr",
    "epoch": "epoch",
    "step": "step",
}
# When a log has both, the epoch-level value wins over the mean of step-level values.
PREFERRED_SUFFIX = "_epoch"
LAST_VALUE_KEYS = ("lr", "step")
ACCURACY_KEYS = ("train_acc", "val_acc")
KNOWN_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc")


def _bad(path: Path, received: str, fix: str) -> UserError:
    return UserError(
        f"cannot read a training history from {str(path)!r}",
        expected="a run directory, a trainwise history.jsonl, a Keras CSVLogger CSV or a Lightning metrics.csv",
        received=received,
        fix=fix,
    )


def read_history(path: str | Path, columns: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records, meta). ``columns`` maps source column names to trainwise keys (``{"my_loss": "train_loss"}``).

    ``meta`` holds ``format`` and, for a run directory, ``config`` (dict), ``num_classes``, ``task`` and
    ``predictions`` (confusion matrix / per-class metrics from summary.json) when present.
    """
    path = Path(path)
    if path.is_dir():
        return _read_dir(path, columns)
    if not path.is_file():
        raise _bad(path, "no such file or directory", "pass the path of a run directory or of a history file")
    if path.suffix == ".jsonl" or path.name.endswith(".jsonl"):
        return _read_jsonl(path), {"format": "trainwise", "path": str(path)}
    if path.suffix.lower() in (".csv", ".tsv", ".log", ".txt"):
        return _read_csv(path, columns)
    raise _bad(path, f"a file with suffix {path.suffix or '(none)'!r}", "pass a .jsonl or .csv history, or a run directory")


def _read_dir(path: Path, columns: dict[str, str] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if (path / "history.jsonl").is_file():
        records = _read_jsonl(path / "history.jsonl")
        meta: dict[str, Any] = {"format": "trainwise", "path": str(path)}
        if (path / "config.toml").is_file():
            try:
                meta["config"] = tomllib.loads((path / "config.toml").read_text())
            except tomllib.TOMLDecodeError as err:
                raise UserError(f"{path / 'config.toml'}: malformed TOML", received=str(err), fix="repair or delete config.toml") from None
        if (path / "summary.json").is_file():
            meta |= summary_meta(_read_json(path / "summary.json"))
        return records, meta
    logs = sorted(path.glob("**/metrics.csv")) or sorted(path.glob("*.csv"))
    if len(logs) == 1:
        return _read_csv(logs[0], columns)
    if logs:
        listing = ", ".join(str(p.relative_to(path)) for p in logs[:6])
        raise _bad(path, f"several logs ({listing})", "pass one of them")
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "an empty directory"
    raise _bad(path, listing, "pass the history file itself, or the run directory that holds history.jsonl")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON", received=str(err), fix="repair or delete the file") from None
    return data if isinstance(data, dict) else {}


def summary_meta(summary: dict[str, Any]) -> dict[str, Any]:
    """num_classes, task and the test predictions from a run's summary.json."""
    meta: dict[str, Any] = {}
    for key in ("num_classes", "task"):
        if summary.get(key) is not None:
            meta[key] = summary[key]
    test = summary.get("test", summary)  # test metrics may sit at the top or under "test"
    pred: dict[str, Any] = {}
    for src, dst in (("test_confusion", "confusion"), ("confusion", "confusion"),
                     ("test_precision_per_class", "precision"), ("test_recall_per_class", "recall"),
                     ("per_class_precision", "precision"), ("per_class_recall", "recall"),
                     ("precision_per_class", "precision"), ("recall_per_class", "recall")):
        if isinstance(test, dict) and test.get(src) is not None and dst not in pred:
            pred[dst] = test[src]
    per_class = test.get("test_per_class", test.get("per_class")) if isinstance(test, dict) else None
    if isinstance(per_class, list) and per_class and isinstance(per_class[0], dict):
        pred.setdefault("precision", [c.get("precision", math.nan) for c in per_class])
        pred.setdefault("recall", [c.get("recall", math.nan) for c in per_class])
    elif isinstance(per_class, dict):
        pred.setdefault("precision", per_class.get("precision"))
        pred.setdefault("recall", per_class.get("recall"))
    pred = {k: v for k, v in pred.items() if v is not None}
    if pred:
        meta["predictions"] = pred | {"source": "test"}
    return meta


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = History.load(path).records  # a bad line is already a one-line UserError naming it
    if not records:
        raise _bad(path, "an empty history", "diagnose a run that finished at least one epoch")
    return records


# ----------------------------------------------------------------------------- CSV
def _number(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _key(column: str, columns: dict[str, str] | None) -> tuple[str, bool]:
    """(trainwise key, is a step-level column) for a source column name."""
    if columns and column in columns:
        return columns[column], False
    name = column.strip()
    low = name.lower()
    if low in ALIASES:
        return ALIASES[low], low.endswith("_step")
    for suffix in (PREFERRED_SUFFIX, "_step"):
        if low.endswith(suffix) and low[: -len(suffix)] in ALIASES:
            return ALIASES[low[: -len(suffix)]], suffix == "_step"
    return name, False


def _read_csv(path: Path, columns: dict[str, str] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    text = path.read_text(errors="replace")
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" or ("\t" in text.splitlines()[0] if text else False) else csv.excel
    rows = list(csv.reader(text.splitlines(), dialect))
    if not rows or not rows[0]:
        raise _bad(path, "an empty file", "pass a CSV with a header row")
    header = [h.strip() for h in rows[0]]
    mapped = [_key(h, columns) for h in header]
    keys = {k for k, _ in mapped}
    if not keys & set(KNOWN_METRICS):
        raise _bad(path, f"columns {', '.join(header[:10])}",
                   "name the columns with a mapping, e.g. columns={'my_loss': 'train_loss', 'my_val_loss': 'val_loss'} "
                   "(CLI: --column my_loss=train_loss)")
    fmt = "lightning_csv" if "step" in keys and any(h.lower().endswith(("_step", "_epoch")) for h in header) else "csv"
    if fmt == "csv" and "epoch" in keys and {"train_loss", "val_loss"} & keys and "loss" in (h.lower() for h in header):
        fmt = "keras_csv"
    per_epoch: dict[int, dict[str, list[float]]] = {}
    order: list[int] = []
    for n, row in enumerate(rows[1:]):
        if not any(cell.strip() for cell in row):
            continue
        values = {h: _number(c) for h, c in zip(header, row)}
        epoch_col = next((h for h, (k, _) in zip(header, mapped) if k == "epoch"), None)
        epoch = values.get(epoch_col) if epoch_col else float(n)
        if epoch is None or not math.isfinite(epoch):
            continue  # Lightning writes rows without an epoch only for hparams; nothing to judge there
        e = int(epoch)
        if e not in per_epoch:
            per_epoch[e] = {}
            order.append(e)
        bucket = per_epoch[e]
        for h, (key, is_step) in zip(header, mapped):
            v = values.get(h)
            if key == "epoch" or v is None:
                continue
            bucket.setdefault(f"{key}\0{int(is_step)}", []).append(v)
    if not per_epoch:
        raise _bad(path, "a header but no numeric rows", "check that the file holds per-epoch or per-step values")
    base = 1 if min(order) == 0 else 0  # Keras and Lightning count epochs from 0; trainwise from 1
    records = [_epoch_record(e + base, per_epoch[e]) for e in sorted(order)]
    if any(r.get(k, 0) > 1.0 for r in records for k in ACCURACY_KEYS if isinstance(r.get(k), float)):
        for r in records:  # accuracy logged in percent
            for k in ACCURACY_KEYS:
                if isinstance(r.get(k), float):
                    r[k] /= 100.0
    return records, {"format": fmt, "path": str(path)}


def _epoch_record(epoch: int, bucket: dict[str, list[float]]) -> dict[str, Any]:
    record: dict[str, Any] = {"epoch": epoch}
    chosen: dict[str, tuple[bool, list[float]]] = {}
    for tagged, values in bucket.items():
        key, step = tagged.split("\0")
        is_step = step == "1"
        # An epoch-level column beats a step-level one for the same metric.
        if key not in chosen or (chosen[key][0] and not is_step):
            chosen[key] = (is_step, values)
    for key, (_, values) in chosen.items():
        record[key] = values[-1] if key in LAST_VALUE_KEYS else sum(values) / len(values)
    return record

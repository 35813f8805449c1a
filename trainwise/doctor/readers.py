"""Read a training history from disk into trainwise records, whatever wrote it.

Accepted (a file, or a directory holding exactly one of them):

* a trainwise run directory (``history.jsonl`` + ``config.toml`` + ``summary.json``) or ``history.jsonl``;
* CSV: Keras ``CSVLogger`` (``,`` ``;`` or tab), Lightning ``metrics.csv``, fastai ``CSVLogger``, any CSV
  (``readers_csv``);
* JSON: Hugging Face ``trainer_state.json``, a Keras ``history.history`` dump, a list of records
  (``readers_json``);
* TensorBoard event files (``readers_tensorboard``);
* plain-text logs of ``name: value`` lines (``readers_text``; ``.log``/``.txt`` files that are not CSV).

Foreign logs go through ``readers_rows.to_records`` (names, runs, epochs, test rows, percent);
``meta["assumptions"]`` says, in sentences, every guess made on the way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainwise.doctor import readers_csv, readers_json, readers_tensorboard, readers_text
from trainwise.doctor.readers_rows import to_records
from trainwise.errors import UserError
from trainwise.history import History

CSV_SUFFIXES = (".csv", ".tsv")
TEXT_SUFFIXES = (".log", ".txt", ".out")


def _bad(path: Path, received: str, fix: str) -> UserError:
    return UserError(
        f"cannot read a training history from {str(path)!r}",
        expected="a run directory, history.jsonl, a Keras/Lightning/fastai CSV, trainer_state.json, TensorBoard events or a text log",
        received=received,
        fix=fix,
    )


def read_history(path: str | Path, columns: dict[str, str] | None = None, run: int | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records, meta). ``columns`` maps source names to trainwise keys (``{"my_loss": "train_loss"}``);
    ``run`` picks one of several runs appended to one log (1-based; default: the last).

    ``meta`` holds ``format``, ``assumptions`` (sentences), ``test`` (a final test evaluation) and, for a
    run directory, ``config`` (dict), ``num_classes``, ``task`` and ``predictions`` when present.
    """
    path = Path(path)
    if path.is_dir():
        return _read_dir(path, columns, run)
    if not path.is_file():
        raise _bad(path, "no such file or directory", "pass the path of a run directory or of a log file")
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return _read_jsonl(path), {"format": "trainwise", "path": str(path), "assumptions": []}
    if readers_tensorboard.is_event_file(path):
        return _foreign(readers_tensorboard.read_table(path), path, columns, run)
    if name.endswith(".json"):
        table, config = readers_json.read_table(path, readers_json.load(path))
        records, meta = _foreign(table, path, columns, run)
        return records, meta | ({"config": config} if config else {})
    if path.suffix.lower() in CSV_SUFFIXES:
        return _foreign(readers_csv.read_table(path), path, columns, run)
    if path.suffix.lower() in TEXT_SUFFIXES:
        text = path.read_text(errors="replace")
        objects = _json_lines(text)
        if objects is not None:  # DeiT / MAE / timm-style log.txt: one JSON object per epoch
            table, _ = readers_json.read_table(path, objects)
            table.assumptions.append("one JSON object per line: each line is an epoch")
        else:
            table = readers_csv.read_table(path, text) if _looks_like_csv(text) else readers_text.read_table(path, text)
        return _foreign(table, path, columns, run)
    raise _bad(path, f"a file with suffix {path.suffix or '(none)'!r}",
               "pass a .csv/.json/.jsonl/.log history, an events.out.tfevents.* file, or a run directory")


def _json_lines(text: str) -> list[dict] | None:
    """Every non-empty line a JSON object (and at least two of them), or None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not all(line.lstrip().startswith("{") for line in lines):
        return None
    try:
        objects = [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        return None
    return objects if all(isinstance(o, dict) for o in objects) else None


def _looks_like_csv(text: str) -> bool:
    """A header line of separated names followed by a line with as many fields (Keras' training.log)."""
    lines = [line for line in text.splitlines() if line.strip()][:3]
    if len(lines) < 2:
        return False
    for sep in readers_csv.SEPARATORS:
        n = lines[0].count(sep)
        if n >= 1 and lines[1].count(sep) == n and ":" not in lines[0] and "=" not in lines[0]:
            return True
    return False


def _foreign(table, path: Path, columns: dict[str, str] | None, run: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records, meta = to_records(table, columns, run, str(path))
    return records, meta | {"path": str(path)}


def _read_dir(path: Path, columns: dict[str, str] | None, run: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from trainwise.rundir import SUMMARY, RunDir

    rundir = RunDir(path)  # reads with checksums and one-line errors for damaged or non-UTF-8 files
    if rundir.history_file.is_file():
        from trainwise import integrity

        records = _read_jsonl(rundir.history_file)
        integrity.verify(rundir.history_file)  # after parsing: a torn line is named by its number, other damage by the checksum
        meta: dict[str, Any] = {"format": "trainwise", "path": str(path), "assumptions": []}
        if rundir.is_run():
            meta["config"] = rundir.read_config_dict()
        meta |= summary_meta(rundir.read_json(SUMMARY))
        return records, meta
    if (path / "trainer_state.json").is_file():
        return read_history(path / "trainer_state.json", columns, run)
    states = sorted(path.glob("checkpoint-*/trainer_state.json"), key=_checkpoint_step)
    if states:  # the latest checkpoint's state holds the whole log up to it
        records, meta = read_history(states[-1], columns, run)
        if len(states) > 1:
            meta["assumptions"].insert(0, f"read {states[-1].relative_to(path)}, the latest of {len(states)} checkpoints")
        return records, meta
    logs = sorted(path.glob("**/metrics.csv")) or sorted(path.glob("*.csv"))
    if len(logs) == 1:
        return read_history(logs[0], columns, run)
    if logs:
        listing = ", ".join(str(p.relative_to(path)) for p in logs[:6])
        raise _bad(path, f"several logs ({listing})", "pass one of them")
    if readers_tensorboard.event_files(path):
        return _foreign(readers_tensorboard.read_table(path), path, columns, run)
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "an empty directory"
    raise _bad(path, listing, "pass the log file itself, or the run directory that holds history.jsonl")


def _checkpoint_step(path: Path) -> int:
    try:
        return int(path.parent.name.split("-")[-1])
    except ValueError:
        return -1


def summary_meta(summary: dict[str, Any]) -> dict[str, Any]:
    """num_classes, task and the test predictions from a run's summary.json."""
    meta: dict[str, Any] = {}
    for key in ("num_classes", "task", "model_source"):
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



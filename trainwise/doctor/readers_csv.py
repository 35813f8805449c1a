"""CSV logs: Keras ``CSVLogger`` (any separator), Lightning ``metrics.csv``, fastai ``CSVLogger``, any CSV.

The separator is whichever of ``,`` ``;`` tab occurs most in the header line; with ``;`` a decimal comma
(``0,93``) is read as a decimal point, as the European spreadsheets that write such files mean it.
fastai's ``CSVLogger`` (``epoch,train_loss,valid_loss,<metrics>,time``) computes its metrics on the
validation set, so there ``accuracy`` is validation accuracy and ``error_rate`` is one minus it. A line
equal to the header is a repeated header (a second run appended to the file).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from trainwise.doctor.readers_names import canonical
from trainwise.doctor.readers_rows import KNOWN_METRICS, Table, split_of
from trainwise.errors import UserError

SEPARATORS = (",", ";", "\t")


def number(text: str, decimal_comma: bool = False) -> float | None:
    text = text.strip().rstrip("%")
    if not text:
        return None
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def is_fastai(header: list[str]) -> bool:
    low = [h.strip().lower() for h in header]
    return "train_loss" in low and "valid_loss" in low and (low[-1] == "time" or "epoch" in low)


def fastai_renames(header: list[str]) -> tuple[dict[str, str], list[str]]:
    """fastai's metrics are validation metrics: accuracy -> val_acc, other metrics -> val_<name>."""
    renames: dict[str, str] = {}
    said = []
    for h in header:
        low = h.strip().lower()
        if low in ("epoch", "train_loss", "valid_loss", "time"):
            continue
        if low == "accuracy":
            renames[h] = "val_acc"
            said.append("accuracy is validation accuracy")
        elif low != "error_rate" or "accuracy" in (x.strip().lower() for x in header):
            renames[h] = f"val_{low}"
    return renames, said


def bare_accuracy_is_validation(header: list[str]) -> str | None:
    """The accuracy column to read as validation accuracy, if the header is a hand-written script's
    ``epoch,train_loss,val_loss,acc,...``: both losses name their split, one accuracy column names none,
    and no column is a validation or training accuracy. Keras, whose bare ``accuracy`` is the training
    one, writes a bare ``loss`` beside it; that header keeps the Keras reading."""
    keys = {h: canonical(h)[0] for h in header}
    named = {h for h in header if split_of(h) is not None}
    losses = {keys[h] for h in named}
    if not {"train_loss", "val_loss"} <= losses or any(keys[h] in ("val_acc", "train_acc") for h in named):
        return None
    bare = [h for h in header if h not in named and keys[h] == "train_acc"]
    return bare[0] if len(bare) == 1 else None


def read_table(path: Path, text: str | None = None) -> Table:
    text = path.read_text(errors="replace") if text is None else text
    lines = text.splitlines()
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise UserError(f"{str(path)!r} is empty", expected="a CSV with a header row", received="an empty file",
                        fix="pass the log the training wrote")
    first, sep = _header(lines, first)
    head = lines[first]
    decimal_comma = sep == ";"
    parsed = list(csv.reader(lines[first:], delimiter=sep))
    header = [h.strip() for h in parsed[0]]
    if header and header[0] == "" and "epoch" not in (h.lower() for h in header):
        header[0] = "epoch"  # pandas' to_csv writes the row index as an unnamed first column
    fastai = is_fastai(header)
    error_col = next((h for h in header if h.lower() == "error_rate"), None) if fastai else None
    rows: list[dict[str, float]] = []
    where: list[int] = []
    repeats: set[int] = set()
    texts: list[dict[str, str]] = []
    for n, cells in enumerate(parsed[1:], start=first + 2):
        if not any(c.strip() for c in cells):
            continue
        if [c.strip() for c in cells] == header:
            repeats.add(len(rows))
            continue
        row = {}
        text_cells = {}
        for h, c in zip(header, cells):
            v = number(c, decimal_comma)
            if v is not None:
                row[h] = v
            elif c.strip():
                text_cells[h] = c.strip()
        if error_col and error_col in row and not any(h.lower() == "accuracy" for h in header):
            row["val_acc_from_error_rate"] = 1.0 - row.pop(error_col)
        if row:
            rows.append(row)
            where.append(n)
            texts.append(text_cells)
    fmt = _format(header, fastai, sep)
    renames, said = fastai_renames(header) if fastai else ({}, [])
    bare = None if fastai else bare_accuracy_is_validation(header)
    if bare:
        renames[bare] = "val_acc"
    if error_col and not any(h.lower() == "accuracy" for h in header):
        renames["val_acc_from_error_rate"] = "val_acc"
        said.append("val_acc is 1 - error_rate")
    assumptions = [f"fastai CSVLogger: its metrics are computed on the validation set ({'; '.join(said)})"] if said else []
    if bare:
        assumptions.append(f"'{bare}' has no split in its name while the losses say theirs (train_, val_) and no validation "
                           "accuracy is logged: read as validation accuracy, as scripts that compute it in their evaluation "
                           "loop write it; pass --column to say otherwise")
    if not rows:
        raise UserError(f"cannot read a training history from {str(path)!r}", expected="numeric rows under the header",
                        received=f"columns {', '.join(header[:10])} and no numbers", fix="check that the file holds per-epoch or per-step values")
    column, names = _blocks(header, texts) or ("", None)
    phased = names is not None and bool(PHASE_COLUMN.match(column))
    if phased:
        assumptions.append(f"the '{column}' column names phases of one run ({', '.join(dict.fromkeys(names))}): "
                           "each record carries its phase")
    return Table(rows=rows, fmt=fmt, lines=where, header_repeats=repeats, renames=renames, assumptions=assumptions,
                 position_word="line", run_names=None if phased else names, phases=names if phased else None)


# A text column under one of these names marks stages of one run (a head trained first, then the whole
# network), not runs: its rows stay one run while the epoch counter runs on.
PHASE_COLUMN = re.compile(r"^\s*(phase|stage|training_phase|train_phase)s?\s*$", re.IGNORECASE)


def _blocks(header: list[str], texts: list[dict[str, str]]) -> tuple[str, list[str]] | None:
    """(column, values) of a text column that names the run or phase of each row (``name,epoch,...``), if there
    is one: present on every row, with few distinct values, each in one contiguous block."""
    for h in header:
        values = [t.get(h) for t in texts]
        if not values or any(v is None for v in values):
            continue
        blocks = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
        # A run holds epochs: a text column new on (nearly) every row labels rows ("P1-1", "P1-2"), not runs.
        if 1 < len(blocks) == len(set(blocks)) <= min(50, len(values) // 2):
            return h, values
    return None


def _header(lines: list[str], first: int) -> tuple[int, str]:
    """(index of the header line, separator). Among the opening lines, the first that names a loss, an
    accuracy or the epoch and is followed by a line with as many separators; else the first followed by
    such a line. So a title line above the header (``model_history_log``, ``Trial Details: ..., Batch
    Size: 50, ...``) is skipped."""
    opening = [n for n, line in enumerate(lines) if line.strip()][:8]
    candidates = []
    for n, following in zip(opening, opening[1:]):
        sep = max(SEPARATORS, key=lines[n].count)
        # Fields, not separators: a quoted cell may hold the separator ("[0.1, 0.2]", a per-class list).
        if lines[n].count(sep) and _fields(lines[following], sep) == _fields(lines[n], sep):
            candidates.append((n, sep))
    for n, sep in candidates:
        names = {canonical(cell)[0] for cell in next(csv.reader([lines[n]], delimiter=sep))}
        if names & {"epoch", *KNOWN_METRICS}:
            return n, sep
    if candidates:
        return candidates[0]
    return first, max(SEPARATORS, key=lines[first].count) if any(s in lines[first] for s in SEPARATORS) else ","


def _fields(line: str, sep: str) -> int:
    return len(next(csv.reader([line], delimiter=sep), []))


def _format(header: list[str], fastai: bool, sep: str) -> str:
    if fastai:
        return "fastai_csv"
    low = [h.lower() for h in header]
    if "step" in low and any(h.endswith(("_step", "_epoch")) for h in low):
        return "lightning_csv"
    if "epoch" in low and "loss" in low:
        return "keras_csv" if sep == "," else "keras_csv_semicolon" if sep == ";" else "keras_csv_tab"
    if "step" in low and any(canonical(h)[0].startswith(("val_", "test_")) for h in header):
        return "lightning_csv"
    return "csv"

"""Plain-text training logs: what ``print`` and Keras' ``verbose`` output leave in a file.

A line's metrics are its ``name: value`` / ``name=value`` pairs (``Train Loss: 0.41``, ``val_acc=0.93``,
``Accuracy: 9680/10000 (97%)`` = 0.968); a line with none of them is read for values in brackets or after
a space (Python logging lines: ``Loss [ 0.69] Avg Loss [ 0.68] Accuracy 0.587``). The epoch is the number
after the word "epoch" on the line (``Epoch 3/10``, ``Epoch [3/10]``, ``epoch: 3``) or on the latest line
that had one (Keras prints ``Epoch 3/10`` on a line of its own). A line that begins with a split word
(``Test set: Average loss: ...``, ``Validation - loss: ...``) lends it to names that do not say their own.
Within an epoch, a line with held-out values is its summary: its training values win; otherwise the
training values of the epoch's lines are averaged (per-batch prints). Lines without any known metric are
skipped. An epoch's lines are the consecutive lines under one epoch number: when the counter steps back (a
run resumed from a checkpoint, another run appended), the repeated epochs become rows of their own in file
order, so the rows' reader resumes or splits them as it does for CSVs -- two runs' values are never
averaged. A held-out line that names an earlier epoch than the current one (``Checkpoint loaded (epoch=20,
val_loss=1.05)``) restates that epoch: it is left out and does not move the epoch counter.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainwise.doctor.readers_names import SPLIT_WORDS, canonical, with_split, words
from trainwise.doctor.readers_rows import Table, split_of
from trainwise.errors import UserError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
# A name is words that start with a letter, one space apart ("Train Loss", "val_acc"): so in
# "- 3s 7ms/step - loss: 0.41" the name is "loss", not "s 7ms/step - loss".
NAME = r"[A-Za-z][A-Za-z0-9_./\-]*(?: [A-Za-z][A-Za-z0-9_./\-]*)*"
PAIR = re.compile(rf"({NAME})\s*[:=]\s*(?:(\d+)\s*/\s*(\d+)(?!\d)|({NUMBER}))\s*(%)?", re.IGNORECASE)
# Logging-module lines without separators: "Loss [ 0.69] Avg Loss [ 0.68] Accuracy 0.587" (a value in
# brackets or after a space). Tried only on a line with no name: value pair, so a Keras line keeps its reading.
BARE_PAIR = re.compile(rf"({NAME})\s*(?:\[\s*({NUMBER})\s*\]|\s({NUMBER})(?![\d/.]))(?=\s|$)", re.IGNORECASE)
EPOCH = re.compile(r"\bepoch\b\s*[:=#]?\s*\[?\s*(\d+)", re.IGNORECASE)
FILLER = {"average", "avg", "mean", "total", "set", "running", "epoch"}
SKIP = {"time", "eta", "elapsed", "step", "steps", "batch", "iter", "iteration", "it", "s", "ms", "sec", "secs"}


def _name(raw: str) -> str:
    return "_".join(w for w in words(raw) if w not in FILLER)


def read_table(path: Path, text: str | None = None) -> Table:
    text = path.read_text(errors="replace") if text is None else text
    epoch: int | None = None
    groups: list[tuple[int | None, list[tuple[dict[str, float], bool]]]] = []  # (epoch, its consecutive lines)
    lines: list[int] = []
    seen: set[int] = set()
    restated = 0
    for n, line in enumerate(re.split(r"\r\n|\r|\n", text.replace("\x08", "")), start=1):
        m = EPOCH.search(line)
        pairs = _pairs(line)
        named = int(m.group(1)) if m else None
        if not pairs:
            epoch = named if named is not None else epoch
            continue
        prefix = words(line[: pairs[0][0]])
        split = next((SPLIT_WORDS[w] for w in prefix if w in SPLIT_WORDS), None)
        values: dict[str, float] = {}
        for _, raw, value in pairs:
            name = _name(raw)
            if not name or "epoch" in words(raw) or name in SKIP:
                continue
            if split and split_of(name) is None:
                name = with_split(name, {"val": "validation"}.get(split, split))
            key = canonical(name)[0]
            values[key] = value
        if not any(k.startswith(("train_", "val_", "test_")) or k == "lr" for k in values):
            epoch = named if named is not None else epoch
            continue
        if named is not None and named in seen and named != epoch and not any(split_of(k) == "train" for k in values):
            restated += 1  # "checkpoint loaded (epoch=20, val_loss=1.05)": an earlier epoch restated, not a new one
            continue
        epoch = named if named is not None else epoch
        if epoch is not None:
            seen.add(epoch)
        summary = any(split_of(k) in ("val", "test") for k in values)
        if not groups or groups[-1][0] != epoch:
            groups.append((epoch, []))
            lines.append(n)
        groups[-1][1].append((values, summary))
    if not groups:
        raise UserError(f"cannot read a training history from {str(path)!r}",
                        expected="lines with name: value pairs such as 'Epoch 3 - loss: 0.41 - val_loss: 0.52'",
                        received="no line with a loss or accuracy", fix="pass a CSV/JSON log, or map the columns of a CSV with --column")
    rows = []
    for e, entries in groups:
        row = _epoch_row(entries)
        if e is not None:
            row["epoch"] = float(e)
        rows.append(row)
    if groups[0][0] is None and len(groups) > 1:
        rows.pop(0)  # metric lines before the first epoch marker (a sanity check, a summary)
        lines.pop(0)
    assumptions = ["plain-text log: metrics read from 'name: value' pairs"]
    if restated:
        assumptions.append(f"{restated} held-out line(s) naming an epoch already logged (a checkpoint message) "
                           "restate that epoch and are left out")
    return Table(rows=rows, fmt="text_log", lines=lines, assumptions=assumptions, position_word="line")


def _pairs(line: str) -> list[tuple[int, str, float]]:
    """The line's (start, raw name, value) pairs: its ``name: value`` ones, or where it has none its bare
    ones (``Loss [ 0.69]``), so a line with separators keeps the reading it had before bare pairs were read."""
    pairs = [(p.start(), p.group(1), _value(p)) for p in PAIR.finditer(line)]
    return pairs or [(p.start(), p.group(1), float(p.group(2) or p.group(3))) for p in BARE_PAIR.finditer(line)]


def _value(pair: re.Match) -> float:
    """A separated pair's number; ``9680/10000`` is a ratio."""
    if pair.group(2) is not None:
        return int(pair.group(2)) / int(pair.group(3)) if int(pair.group(3)) else float("nan")
    return float(pair.group(4))


def _epoch_row(entries: list[tuple[dict[str, float], bool]]) -> dict[str, float]:
    row: dict[str, float] = {}
    summaries = [v for v, s in entries if s]
    steps = [v for v, s in entries if not s]
    for values in summaries:  # held-out values and the summary's training values: the last one said
        row.update(values)
    for key in {k for v in steps for k in v}:
        if key not in row:
            vals = [v[key] for v in steps if key in v]
            row[key] = vals[-1] if key == "lr" else sum(vals) / len(vals)
    return row
